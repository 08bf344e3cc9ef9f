import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from encoderec import cli
from encoderec.core.errors import EncoderecError
from encoderec.data import dataset as data
from encoderec.pipeline import export
from tests.conftest import write_dataset

pytestmark = pytest.mark.usefixtures("one_thread")

RQVAE = "{epochs: 2, codebook_size: 4, hidden_dims: [8], latent_dim: 4}"


@pytest.fixture
def catalogue(tmp_path, monkeypatch):
    """24 items (two of them with hostile or empty text, two with the same text) and 30 users, in a cache of its own."""
    items = {str(i): {"title": f"w{i} w{i % 7}", "description": f"w{(i * 3) % 11}", "brand": "", "categories": "",
                      "asin": f"B{i:04d}"} for i in range(24)}
    items["5"] = {"title": "<script>alert('x')</script> \u00e9t\u00e9 \"quoted\" | pipes", "description": "",
                  "brand": "", "categories": "", "asin": "B0005"}
    items["6"] = {"title": "", "description": "", "brand": "", "categories": "", "asin": "B0006"}
    items["8"] = dict(items["7"], asin="B0008")  # the same text as item 7
    # items 20-23 are only validation and test targets: the tokenizer is fitted without them
    sequences = {str(u): [u % 20, (u + 1) % 20, (u + 2) % 20, 20 + u % 2, 22 + u % 2] for u in range(30)}
    write_dataset(tmp_path / "data", "Cat", items, sequences)
    write_dataset(tmp_path / "data", "NoUsers", {k: {kk: vv for kk, vv in v.items() if kk != "asin"}
                                                 for k, v in items.items()})
    monkeypatch.setenv("ENCODEREC_CACHE", str(tmp_path / "cache"))
    return tmp_path / "data"


def _export(data_dir, *args):
    return cli.main(["export", *args, "--data-dir", str(data_dir)])


def test_embeddings_table_reads_back_in_pandas_with_its_provenance(catalogue, tmp_path, capsys):
    out = tmp_path / "out" / "items.parquet"
    assert _export(catalogue, "embeddings", "Cat", "--model", "tfidf-svd", "--out", str(out)) == 0
    assert capsys.readouterr().out.strip() == str(out)
    items = pd.read_parquet(out)
    dataset = data.load_dataset("Cat", catalogue)
    assert list(items.columns) == ["item", "title", "asin", "embedding"]
    assert items["item"].tolist() == list(range(24)) and items["asin"][5] == "B0005"
    assert items["title"].tolist() == [data.clean_text(item["title"]) for item in dataset.items]
    x = np.stack(items["embedding"])
    assert x.dtype == np.float32 and x.shape[0] == 24
    norms = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(np.delete(norms, 6), 1.0, atol=1e-5)
    assert norms[6] == 0  # TF-IDF has no vector for an empty text
    np.testing.assert_array_equal(x[7], x[8])  # the same text, the same vector
    info = export.provenance(out)
    assert info["dataset"]["name"] == "Cat" and info["dataset"]["items"] == 24
    assert info["model"] == {"name": "tfidf-svd", "resolved": "tfidf-svd", "seed": None, "fingerprint": None}
    assert info["view"] == "full" and info["dim"] == x.shape[1] and "commit" in info["git"]


def test_semantic_id_table_has_codes_and_both_unique_forms(catalogue, tmp_path):
    out = tmp_path / "ids.parquet"
    assert _export(catalogue, "semantic-ids", "Cat", "--model", "tfidf-svd", "--rqvae", RQVAE, "--seed", "3",
                   "--out", str(out)) == 0
    ids = pd.read_parquet(out)
    assert list(ids.columns) == ["item", "title", "asin", "c0", "c1", "c2", "dedup", "unique_last"]
    assert not ids.duplicated(["c0", "c1", "c2", "dedup"]).any()  # TIGER's IDs are unique
    assert ids[["c0", "c1", "c2"]].to_numpy().max() < 4
    assert (ids.loc[7, ["c0", "c1", "c2"]] == ids.loc[8, ["c0", "c1", "c2"]]).all()  # identical texts collide
    if ids["unique_last"].notna().all():
        assert not ids.duplicated(["c0", "c1", "unique_last"]).any()
    info = export.provenance(out)
    assert info["tokenizer"]["tokenizer"] == "rqvae" and info["tokenizer"]["config"]["seed"] == 3
    assert info["tokenizer"]["config"]["codebook_size"] == 4 and info["tokenizer"]["fit_items"] == 20
    assert info["fit_items"] == "training items (leave-one-out)"
    assert info["items_sharing_an_id"] == int(ids.duplicated(["c0", "c1", "c2"]).sum())


def test_a_catalogue_without_interactions_fits_on_every_item(catalogue, tmp_path):
    out = tmp_path / "ids.parquet"
    assert _export(catalogue, "semantic-ids", "NoUsers", "--model", "random", "--tokenizer", "rkmeans", "--rqvae",
                   "{codebook_size: 4}", "--out", str(out)) == 0
    ids = pd.read_parquet(out)
    assert "asin" not in ids.columns and len(ids) == 24
    info = export.provenance(out)
    assert info["fit_items"] == "all items" and info["tokenizer"]["fit_items"] == 24


def test_a_model_folder_is_named_by_its_fingerprint(catalogue, tmp_path, tiny_st_model):
    out = tmp_path / "items.parquet"
    assert _export(catalogue, "embeddings", "Cat", "--model", str(tiny_st_model), "--out", str(out)) == 0
    info = export.provenance(out)
    assert info["model"]["resolved"] == str(tiny_st_model) and len(info["model"]["fingerprint"]) == 64
    assert np.stack(pd.read_parquet(out)["embedding"]).shape == (24, 32)


@pytest.mark.parametrize(("args", "message"), [
    (["embeddings", "Cat", "--model", "tfidf-svd", "--out", "{tmp}"], "is a folder; give a file name"),
    (["semantic-ids", "Cat", "--model", "random", "--rqvae", "{levelz: 3}", "--out", "{tmp}/x.parquet"],
     "--rqvae: unknown key 'levelz'; known keys: input_dim"),
    (["semantic-ids", "Cat", "--model", "random", "--rqvae", "[1, 2]", "--out", "{tmp}/x.parquet"],
     "expected a YAML mapping"),
    (["semantic-ids", "Cat", "--model", "random", "--rqvae", "{levels: 0}", "--out", "{tmp}/x.parquet"],
     "--rqvae: RQVAEConfig.levels: expected a positive integer"),
    (["embeddings", "Cat", "--model", "EncodeRec-22M", "--profile", "nothing-trained", "--out", "{tmp}/x.parquet"],
     "EncodeRec-22M: neither an alias"),
    (["embeddings", "Nope", "--model", "random", "--out", "{tmp}/x.parquet"], "Nope"),
])
def test_bad_input_is_one_line_naming_what_to_fix(catalogue, tmp_path, capsys, args, message):
    assert _export(catalogue, *[a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert not list(tmp_path.glob("*.parquet"))  # nothing half-written


def test_provenance_of_a_file_export_did_not_write(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(EncoderecError, match="x.parquet: not a Parquet file"):
        export.provenance(tmp_path / "x.parquet")
    pq.write_table(pd.DataFrame({"a": [1]}).pipe(__import__("pyarrow").Table.from_pandas), tmp_path / "y.parquet")
    with pytest.raises(EncoderecError, match="no encoderec provenance"):
        export.provenance(tmp_path / "y.parquet")


def test_a_model_listed_but_not_on_this_machine_is_named(catalogue, tmp_path, monkeypatch):
    results = tmp_path / "root" / "results" / "p"
    results.mkdir(parents=True)
    (results / "encoderec_models.json").write_text(json.dumps({"rows": [
        {"name": "EncodeRec-22M", "backbone": "all-MiniLM-L6-v2", "seed": 0, "path": str(tmp_path / "gone")}]}))
    monkeypatch.setattr("encoderec.core.paths.project_root", lambda: tmp_path / "root")
    with pytest.raises(EncoderecError, match="which this machine does not have; train it with"):
        export.export_embeddings(data.load_dataset("Cat", catalogue), "EncodeRec-22M", tmp_path / "x.parquet",
                                 profile="p")
