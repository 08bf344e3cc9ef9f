"""The model registry: names, families, base encoders and folders of a profile's models, in one place."""

import pytest

from encoderec.core.errors import EncoderecError
from encoderec.pipeline import registry
from encoderec.report import notebook

RECIPES = [{"name": "EncodeRec-22M", "backbone": "all-MiniLM-L6-v2"},
           {"name": "Mine+", "backbone": "all-MiniLM-L6-v2", "interaction_ratio": 0.5}]


def write_profile(root, text):
    (root / "params").mkdir(exist_ok=True)
    (root / "params" / "t.yaml").write_text(text)


def test_names_resolve_to_the_runs_01_recorded(tmp_path):
    write_profile(tmp_path, "notebooks:\n  01_encoderec: {models: [{name: EncodeRec-22M, backbone: all-MiniLM-L6-v2}]}\n")
    models = registry.of_profile("t", tmp_path / "results" / "t", tmp_path / "params")
    assert models.encoder("all-MiniLM-L6-v2") == ("all-MiniLM-L6-v2", None)  # a base encoder, as it is
    with pytest.raises(EncoderecError, match=r"encoderec_models\.json lists no run of EncodeRec-22M: train it first "
                                             r"with .*--only 01_encoderec"):
        models.encoder("EncodeRec-22M")
    rows = [{"name": "EncodeRec-22M", "backbone": "all-MiniLM-L6-v2", "seed": s, "path": f"/m/{s}"} for s in (0, 1)]
    notebook.start("x", {}, tmp_path, "t").save("encoderec_models", rows)
    models = registry.of_profile("t", tmp_path / "results" / "t", tmp_path / "params")
    assert models.encoder("EncodeRec-22M", 1) == ("/m/1", 1)
    assert models.encoder("EncodeRec-22M", 5) == ("/m/0", 0)  # no such seed: the first one
    assert models.base_encoder("EncodeRec-22M") == "all-MiniLM-L6-v2" and models.base_encoder("tfidf-svd") is None
    assert models.encoders(["all-MiniLM-L6-v2"])["EncodeRec-22M (seed 1)"]["backbone"] == "/m/1"


def test_a_fine_tuned_model_is_known_by_the_profile_not_by_its_name():
    models = registry.Models("t", {m["name"]: m for m in RECIPES})
    assert [models.family(n) for n in ("all-MiniLM-L6-v2", "EncodeRec-22M", "Mine+", "tfidf-svd", registry.ID_ONLY,
                                       "EncodeRec-someone-elses")] == [
        "base", "EncodeRec", "EncodeRec+", "baseline", "baseline", "base"]
    assert models.encoder("EncodeRec-someone-elses") == ("EncodeRec-someone-elses", None)  # a Hugging Face id, say


def test_read_only_lists_a_model_without_a_run_as_pending():
    folder, seed = registry.Models("t", {m["name"]: m for m in RECIPES}, read_only=True).encoder("Mine+", 2)
    assert folder.endswith("Mine+-pending/final") and seed == 2
