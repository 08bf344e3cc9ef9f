import json
import os
from pathlib import Path

import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
from transformers import BertConfig, BertModel, BertTokenizerFast

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from encoderec.core import paths  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--record-golden", action="store_true",
                     help="record the outputs of every computing unit in tests/golden/ (after bumping its version)")


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The real data mirror; tests that need it skip with the reason when it is absent."""
    root = paths.data_dir()
    if not (root / "README.md").is_file() or not (root / "Scientific" / "Scientific.item.json").is_file():
        pytest.skip(f"data mirror not found at {root} (set ENCODEREC_DATA to run the tests on real data)")
    return root


def write_dataset(root: Path, name: str, items, sequences=None, timestamps=None) -> Path:
    """A small dataset in the mirror's layout, written as raw JSON so tests can also corrupt it."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.item.json").write_text(json.dumps(items))
    if sequences is not None:
        (folder / f"{name}.inter.json").write_text(json.dumps(sequences))
    if timestamps is not None:
        (folder / f"{name}.time.json").write_text(json.dumps(timestamps))
    return folder


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    items = {
        "0": {"title": "Lab beaker 250 ml", "description": "Borosilicate &amp; glass", "brand": "Pyrex", "categories": "Lab,Glass"},
        "1": {"title": "Nitrile gloves", "description": "", "brand": "", "categories": "Lab,Safety"},
        "2": {"title": "Lab beaker 250 ml", "description": "Borosilicate &amp; glass", "brand": "Other", "categories": "Lab"},
        "3": {"title": "Safety goggles", "description": "Anti-fog   lenses\n", "brand": "3M", "categories": "Lab,Safety"},
    }
    sequences = {"0": [0, 1, 2, 3], "1": [1, 3, 0], "2": [3, 2, 1]}
    timestamps = {"0": [10, 20, 30, 40], "1": [15, 25, 35], "2": [5, 6, 50]}
    write_dataset(tmp_path, "Tiny", items, sequences, timestamps)
    return tmp_path


WORDS = "a the of for and kids puzzle jigsaw piece glass beaker laboratory toy wooden set red blue".split()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A plain Hugging Face BERT folder (config.json, no modules.json) with random weights.

    Its vocabulary is WORDS plus w0, w1, ..., so test texts built from those tokenise without [UNK].
    Dropout is off, so a forward pass in training mode is deterministic (losses can be compared exactly).
    """
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *(f"w{i}" for i in range(100 - 5 - len(WORDS)))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    bert_config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    BertModel(bert_config).save_pretrained(folder)
    # transformers 5 takes the word list as `vocab` (it silently ignores the old `vocab_file`, leaving all [UNK])
    BertTokenizerFast(vocab=str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_st_model(tiny_bert, tmp_path_factory) -> Path:
    """tiny_bert saved as a sentence-transformers folder with mean pooling, for the loss and training tests.

    The [CLS] vector of a random BERT is nearly the same for every text (cosine ~1), which makes every
    contrastive loss log(batch size); mean pooling gives distinct texts distinct embeddings.
    """
    transformer = Transformer(str(tiny_bert))
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    folder = tmp_path_factory.mktemp("tiny-st")
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared 2-core machine: a second thread only waits for the first (10x slower under load)."""
    import faiss
    import torch

    threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(faiss_threads)
