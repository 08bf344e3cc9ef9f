"""Matrix-product FLOPs of the report's models, from their shapes: the work a run does, to set beside what the
machine can do (`bench/limit.py`).

One multiply-add is 2 FLOPs; only matrix products count (linear layers, attention's two products, item scores),
which is what `torch.utils.flop_counter.FlopCounterMode` counts and what a CPU's GFLOP/s ceiling measures;
embeddings, norms, activations and softmax are left out (a few per cent of the products at these sizes). Every
count is of the tokens a run needs, not of the padding it computes: padding is waste, and the limit table shows it
as a lower achieved fraction. Training costs `TRAINING` = 3 forward passes (the backward pass computes the
gradients of a product's two inputs, two products of the forward's size); GradCache's cached in-batch loss (the
EncodeRec trainer) adds a forward pass without gradients, so 4.

Per layer, with s tokens (queries), t keys, width d, attention width a (heads x head size) and feed-forward f:

    self-attention         8 s d a + 4 s^2 a          (q, k, v, o projections; q k^T and the weighted sum)
    cross-attention        4 s d a + 4 t d a + 4 s t a  (q, o on the s queries; k, v on the t encoder outputs)
    feed-forward           4 s d f

- `encoder_forward(s, layers, d, f)`: a BERT or MPNet sentence encoder (a = d) over one text of s tokens.
- `sasrec_forward(tokens, squares, ...)`: UniSRec / SASRec over a batch: the transformer over its `tokens` (the
  sum of the histories' lengths; `squares` the sum of their squares), the MoE adaptor over every item (UniSRec's
  text modes), and the scores of the batch's users against every item.
- `t5_forward(input_tokens, input_squares, examples, ...)`: TIGER's encoder-decoder with teacher forcing: the encoder
  over each input, a decoder of `target_length` tokens per example and the logits over the vocabulary.
- `rqvae_training_step(items, input_dim, hidden, latent, levels, codebook)`: the RQ-VAE's encoder and decoder MLPs over a batch of
  items and each level's distances to its codebook (the distances carry no gradient: a training step is 3 forward
  passes of the MLPs, less the embeddings' gradient, and 1 of the distances).
- `t5_beam_search(...)`: TIGER's constrained beam search: the encoder once per user, the cross-attention keys and
  values once, then one new decoder token per beam and level against the cached ones (`Tiger._beam_batch`).
"""

from __future__ import annotations

TRAINING = 3  # forward + backward: the backward's two products per forward product
GRADCACHE_TRAINING = 4  # GradCache: a forward without gradients first


def self_attention_layer(s: float, squares: float, d: int, a: int, f: int) -> float:
    """FLOPs of one transformer layer (self-attention and feed-forward) over s tokens whose sequences' squared
    lengths sum to `squares` (s^2 for one sequence)."""
    return 8 * s * d * a + 4 * squares * a + 4 * s * d * f


def encoder_forward(s: int, layers: int, d: int, f: int) -> float:
    """A sentence encoder (BERT, MPNet: attention width d) over one text of s tokens."""
    return layers * self_attention_layer(s, s * s, d, d, f)


def sasrec_forward(tokens: float, squares: float, users: int, layers: int, hidden: int, inner: int, n_items: int,
                   text_dim: int | None = None, experts: int = 0) -> float:
    """UniSRec / SASRec over a batch of `users` histories (`tokens` items in all, their squared lengths summing to
    `squares`): the transformer, the adaptor of every item's text (none for the ID-only model: `text_dim` None) and
    every user's scores against every item; in training (the adaptor's gate noise is a training-time product)."""
    transformer = layers * self_attention_layer(tokens, squares, hidden, hidden, inner)
    # every item: its text through the experts, the gate and its noise; the experts' mixture; the experts' shifts
    adaptor = 0 if text_dim is None else (2 * n_items * (text_dim * (experts * hidden + 2 * experts) + experts * hidden)
                                          + 2 * experts * text_dim * hidden)
    return transformer + adaptor + 2 * users * hidden * n_items


def t5_forward(input_tokens: float, input_squares: float, examples: int, target_length: int, layers: int,
               d_model: int, attention: int, d_ff: int, vocab: int, cross_products: float | None = None) -> float:
    """TIGER's T5 over a batch with teacher forcing: the encoder over `input_tokens` (squared lengths summing to
    `input_squares`), `layers` decoder layers over `target_length` tokens per example, attending to their inputs
    (`cross_products`: the sum over examples of target length x input length, by default target_length x
    input_tokens), and the logits over `vocab`."""
    targets = examples * target_length
    cross = target_length * input_tokens if cross_products is None else cross_products
    encoder = layers * self_attention_layer(input_tokens, input_squares, d_model, attention, d_ff)
    decoder = layers * (self_attention_layer(targets, examples * target_length ** 2, d_model, attention, d_ff)
                        + 4 * targets * d_model * attention + 4 * input_tokens * d_model * attention
                        + 4 * cross * attention)
    return encoder + decoder + 2 * targets * d_model * vocab


def t5_beam_search(input_tokens: float, input_squares: float, examples: int, depth: int, beam: int, layers: int,
                   d_model: int, attention: int, d_ff: int, vocab: int) -> float:
    """TIGER's beam search over `examples` users (`input_tokens` input tokens in all, their squared lengths summing
    to `input_squares`) for IDs of `depth` codes: the first level decodes one row per user, every later level
    `beam` rows, one new token each, attending to the tokens decoded before it (the cache) and to the input (every
    level's codebook has at least `beam` codes, as TIGER's 256 against its beam of 20)."""
    encoder = layers * self_attention_layer(input_tokens, input_squares, d_model, attention, d_ff)
    cross_keys = layers * 4 * input_tokens * d_model * attention  # once, on the first level's one row per user
    decoded = 0.0
    for level in range(depth):
        width = 1 if level == 0 else beam
        rows = examples * width
        per_token = (8 * d_model * attention + 4 * (level + 1) * attention  # self-attention over the cache
                     + 4 * d_model * attention + 4 * d_ff * d_model)  # cross-attention's q and o, feed-forward
        decoded += layers * (rows * per_token + 4 * width * input_tokens * attention) + 2 * rows * d_model * vocab
    return encoder + cross_keys + decoded


def mlp_forward(rows: int, dims: list[int]) -> float:
    """Linear layers through `dims` over `rows` inputs."""
    return sum(2 * rows * a * b for a, b in zip(dims, dims[1:], strict=False))


def rqvae_training_step(items: int, input_dim: int, hidden: list[int], latent: int, levels: int,
                        codebook: int) -> float:
    """One RQ-VAE training step on `items` rows: forward and backward of the encoder and decoder MLPs, and the
    distances of every level's residual to its codebook (forward only: they pick codes, no gradient flows); the
    embeddings need no gradient, so the first layer's backward is one product, not two."""
    dims = [input_dim, *hidden, latent]
    mlps = TRAINING * (mlp_forward(items, dims) + mlp_forward(items, dims[::-1])) - mlp_forward(items, dims[:2])
    return mlps + levels * 2 * items * latent * codebook
