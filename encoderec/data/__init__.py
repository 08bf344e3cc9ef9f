"""The data layer: catalogues and interaction sequences in the mirror's layout (`dataset`: loading, text views,
splits, training examples), building that layout from raw Amazon files (`convert`), and describing catalogues
(`describe`)."""
