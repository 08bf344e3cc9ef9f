"""The FLOP formulas of `encoderec.models.flops` against torch's own count of the products the real modules run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertModel, T5Config, T5ForConditionalGeneration

from encoderec.models import flops
from encoderec.models.unisrec import UniSRec, UniSRecConfig


def counted(run) -> int:
    """Matrix-product FLOPs of `run()` as torch counts them, attention decomposed into products (the CPU's fused
    attention kernel is not in torch's FLOP registry)."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


def test_sentence_encoder_forward_and_training():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, attn_implementation="eager")
    model = BertModel(config, add_pooling_layer=False)
    ids = torch.randint(1, 50, (1, 11))
    expected = flops.encoder_forward(11, layers=2, d=64, f=128)
    assert counted(lambda: model(input_ids=ids)) == expected
    assert counted(lambda: model(input_ids=ids).last_hidden_state.sum().backward()) == pytest.approx(
        flops.TRAINING * expected, rel=0.02)


@pytest.mark.parametrize("mode", ["inductive", "id"])
def test_unisrec_training_forward(mode):
    torch.manual_seed(0)
    cfg = UniSRecConfig(mode=mode, hidden_size=32, inner_size=48, layers=2, heads=2, experts=3, max_len=8)
    n_items, text_dim, users, steps = 40, 24, 5, 7
    model = UniSRec(cfg, n_items, torch.randn(n_items, text_dim) if mode != "id" else None).train()
    histories, lengths = torch.randint(0, n_items, (users, steps)), torch.full((users,), steps)
    expected = flops.sasrec_forward(users * steps, users * steps ** 2, users, layers=2, hidden=32, inner=48,
                                    n_items=n_items, text_dim=text_dim if mode != "id" else None, experts=3)
    assert counted(lambda: model.logits(histories, lengths)) == expected


def test_t5_teacher_forcing_forward():
    torch.manual_seed(0)
    config = T5Config(vocab_size=60, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                      feed_forward_proj="relu", decoder_start_token_id=0, tie_word_embeddings=True)
    model = T5ForConditionalGeneration(config)
    examples, length, target = 3, 13, 4
    inputs, labels = torch.randint(1, 60, (examples, length)), torch.randint(1, 60, (examples, target))
    expected = flops.t5_forward(examples * length, examples * length ** 2, examples, target, layers=2, d_model=32,
                                attention=32, d_ff=64, vocab=60)
    assert counted(lambda: model(input_ids=inputs, labels=labels)) == expected


def test_tiger_beam_search():
    from encoderec.data.dataset import Example
    from encoderec.models.tiger import Tiger, TigerConfig

    torch.manual_seed(0)
    # 72 items, depth 3, every level with at least beam_size codes (as TIGER's 256 against its beam of 20)
    codes = np.array([[a, b, c] for a in range(6) for b in range(6) for c in range(2)])[::2]
    codes[:, 2] = np.arange(len(codes)) % 5
    tiger = Tiger(TigerConfig(layers=2, d_model=32, heads=4, d_kv=8, d_ff=64, beam_size=5, top_k=5, user_buckets=10,
                              device="cpu", precision="fp32"))
    tiger._setup(codes)
    tiger.model = T5ForConditionalGeneration(tiger._t5_config()).eval()
    batch = [Example(user, [1 + user, 2], 5) for user in range(4)]  # one length: no padding
    length = 1 + 3 * 2 + 1  # user token, three codes per item, end
    expected = flops.t5_beam_search(len(batch) * length, len(batch) * length ** 2, len(batch), depth=3, beam=5,
                                    layers=2, d_model=32, attention=32, d_ff=64, vocab=tiger.vocab_size)
    with torch.no_grad():
        assert counted(lambda: tiger._beam_batch(batch)) == expected


def test_rqvae_training_step():
    from encoderec.models.rqvae import RQVAEConfig, RQVAEModel

    torch.manual_seed(0)
    model = RQVAEModel(RQVAEConfig(hidden_dims=(24, 16), latent_dim=8, levels=3, codebook_size=10), input_dim=32)
    x = torch.randn(50, 32)
    expected = flops.rqvae_training_step(50, 32, [24, 16], latent=8, levels=3, codebook=10)
    assert counted(lambda: model(x)["loss"].backward()) == expected
