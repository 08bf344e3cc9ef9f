"""encoderec: reproduce, test and extend EncodeRec (metadata-contrastive item embeddings for recommendation)."""

__version__ = "0.1.0"
