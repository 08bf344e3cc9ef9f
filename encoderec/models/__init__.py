"""The models, each in one file with its config dataclass: the EncodeRec loss and fine-tuning (`loss`, `trainer`),
encoding (`embeddings`), the RQ-VAE and semantic IDs (`rqvae`, `semantic_ids`, `collisions`), the recommenders
(`unisrec`, `tiger`) with their shared fitting harness and metrics (`fitting`, `metrics`), title-to-description
retrieval (`retrieval`) and the embedding space (`space`)."""
