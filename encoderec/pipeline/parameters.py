"""The notebooks' parameters: one typed schema per notebook, the single home of their defaults.

    p = parameters.of("05_tiger", "paper", {"seeds": [0]})   # defaults <- params/paper.yaml <- these, validated
    p.tiger                                                  # {"layers": 2, ...}: TigerConfig fields, checked

A notebook's parameters cell holds only `profile`, `parameters` (a mapping of this schema's fields over the
profile's), `data_dir` and `output_root`; its first code cell turns them into the notebook's dataclass with `of`.
The report runner validates every profile when it loads it (`check_profile`): an unknown key, a value of the wrong
type or a setting that the model's config rejects fails before any notebook runs, naming the file, the key and what
is allowed. Settings of the models travel as the config's own fields (`TigerConfig`, `UniSRecConfig`,
`RQVAEConfig`, `TrainConfig`) and are checked by them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from encoderec.core import paths
from encoderec.core.errors import EncoderecError
from encoderec.models.rqvae import RQVAEConfig
from encoderec.models.tiger import TigerConfig
from encoderec.models.trainer import TrainConfig
from encoderec.models.unisrec import UniSRecConfig
from encoderec.pipeline.profiles import Profile, load_profile

INJECTED = ("profile", "parameters", "data_dir", "output_root")  # every notebook's parameters cell declares these
IdVariant = Literal["dedup", "unique", "shared"]  # semantic_ids.ID_VARIANTS
ReadOnly = bool | list[str]  # True: compute nothing; a list: the datasets whose units are only read (the GPU set's)


@dataclass(frozen=True)
class Data:
    """00_data: the catalogues described, and the tokenizer whose lengths are counted."""

    datasets: list[str] = field(default_factory=lambda: ["Scientific", "Office", "Beauty", "Toys", "Industrial2018",
                                                         "Office2018"])
    tokenizer_backbone: str = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Units:
    """What every notebook with units of work has: where they are archived and whether they are only read."""

    archive: bool = False  # keep every finished unit in results/<profile>/runs/ too, read it from there first
    read_only: ReadOnly = False  # compute nothing (True), or nothing for these datasets; the rest is pending


@dataclass(frozen=True)
class EncodeRec(Units):
    """01_encoderec: the fine-tuned models, each with its own seeds or `seeds`, and TrainConfig fields."""

    held_out_fraction: float = 0.2
    models: list[dict[str, Any]] = field(
        default_factory=lambda: [{"name": "EncodeRec-22M", "backbone": "all-MiniLM-L6-v2"}])
    seeds: list[int] = field(default_factory=lambda: [0])
    training: dict[str, Any] = field(default_factory=lambda: {
        "datasets": ["Scientific", "Office", "Industrial2018", "Office2018"], "batch_size": 512,
        "mini_batch_size": 32, "learning_rate": 5e-5, "warmup_ratio": 0.1, "epochs": 1.0, "temperature": 0.05,
        "max_seq_length": 64})


@dataclass(frozen=True)
class Retrieval(Units):
    """02_retrieval: Table 1 on held-out items, and the embedding space of one catalogue."""

    held_out_fraction: float = 0.2
    datasets: list[str] = field(default_factory=lambda: ["Scientific", "Office", "Beauty", "Toys"])
    base_backbones: list[str] = field(default_factory=lambda: ["all-MiniLM-L6-v2"])
    # "all": the catalogue's distinct documents; "held_out": the held-out items' only
    corpus: Literal["all", "held_out"] = "all"
    space_dataset: str = "Scientific"
    space_max_items: int | None = None
    interactive: bool = False  # an interactive top-10 explorer (ipywidgets, JupyterLab only)
    explore_query: str = "digital caliper 6 inch stainless steel"


@dataclass(frozen=True)
class SemanticIds(Units):
    """03_semantic_ids: every tokenizer on every backbone's embeddings, seeds, and a UMAP of one catalogue."""

    datasets: list[str] = field(default_factory=lambda: ["Scientific", "Office", "Beauty", "Toys"])
    backbones: list[str] = field(default_factory=lambda: ["tfidf-svd", "all-MiniLM-L6-v2", "EncodeRec-22M"])
    tokenizers: list[Literal["rqvae", "rkmeans"]] = field(default_factory=lambda: ["rqvae", "rkmeans"])
    seeds: list[int] = field(default_factory=lambda: [0])
    rqvae: dict[str, Any] = field(default_factory=dict)  # RQVAEConfig fields; TIGER's settings otherwise
    max_items: int | None = None  # a seeded sample of each catalogue (smoke tests); None: every item
    map_dataset: str = "Scientific"


@dataclass(frozen=True)
class Recommender(Units):
    """What 04_unisrec and 05_tiger share: the runs' datasets, backbones, seeds and data slice."""

    datasets: list[str] = field(default_factory=lambda: ["Scientific"])
    backbones: list[str] = field(default_factory=lambda: ["all-MiniLM-L6-v2", "EncodeRec-22M"])
    seeds: list[int] = field(default_factory=lambda: [0])
    max_items: int | None = None  # only the most popular items and the users left with 3 of them (smoke tests)
    max_users: int | None = None  # a seeded sample of users and their items only (smoke tests)


@dataclass(frozen=True)
class UniSRec(Recommender):
    """04_unisrec: UniSRec in each mode on every backbone, the ID-only SASRec, and the adaptor ablation."""

    # "transductive": text and item ID
    modes: list[Literal["inductive", "transductive"]] = field(default_factory=lambda: ["inductive"])
    id_baseline: bool = False
    unisrec: dict[str, Any] = field(default_factory=lambda: {"epochs": 12, "patience": 3, "text_norm": "scaled"})
    dataset_unisrec: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset -> fields over `unisrec`
    # {datasets, backbones, id_baseline, seeds, settings: {label: UniSRecConfig fields over `unisrec`}}; {}: none
    ablation: dict[str, Any] = field(default_factory=dict)
    # {datasets, seeds, settings: UniSRecConfig fields over `unisrec`}: RecBole's SASRec beside our ID-only SASRec,
    # both with these settings (`runs.recbole_plan`; needs `make recbole`); {}: none
    recbole: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tiger(Recommender):
    """05_tiger: TIGER on every backbone's semantic IDs, in each ID variant."""

    extra_backbones: dict[str, list[str]] = field(default_factory=dict)  # dataset -> backbones run there only
    id_variants: list[IdVariant] = field(default_factory=lambda: ["dedup"])
    extra_id_variants: dict[str, dict[str, list[IdVariant]]] = field(default_factory=dict)  # dataset -> backbone -> more
    rqvae: dict[str, Any] = field(default_factory=dict)  # RQVAEConfig fields; 03's settings reuse its cached IDs
    tiger: dict[str, Any] = field(default_factory=lambda: {
        "layers": 2, "heads": 4, "d_kv": 32, "d_ff": 512, "dropout": 0.0, "epochs": 14, "eval_every": 2,
        "patience": 3, "valid_users": 500})
    dataset_tiger: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset -> fields over `tiger`
    # {datasets, backbones, seeds, settings: {label: TigerConfig fields over the dataset's}}: other sizes beside
    # this one (dedup IDs); {}: none
    calibration: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    """06_summary: where to write the Markdown summary and which README's claim table to rewrite."""

    results_md: str | None = None  # relative to the output root; None: results/<profile>/RESULTS.md
    readme: str | None = None  # relative to the output root; None: none


SCHEMAS: dict[str, type] = {"00_data": Data, "01_encoderec": EncodeRec, "02_retrieval": Retrieval,
                            "03_semantic_ids": SemanticIds, "04_unisrec": UniSRec, "05_tiger": Tiger,
                            "06_summary": Summary}
# model settings checked by their config: field -> (config, whether it maps datasets to settings)
CONFIGS = {"training": (TrainConfig, False), "rqvae": (RQVAEConfig, False),
           "tiger": (TigerConfig, False), "dataset_tiger": (TigerConfig, True),
           "unisrec": (UniSRecConfig, False), "dataset_unisrec": (UniSRecConfig, True)}


def schema(notebook: str) -> type:
    if notebook not in SCHEMAS:
        raise EncoderecError(f"{notebook}: no parameter schema; the notebooks are {', '.join(SCHEMAS)}")
    return SCHEMAS[notebook]


def fields(notebook: str) -> dict[str, Any]:
    """The notebook's parameters with their defaults."""
    return {f.name: getattr(schema(notebook)(), f.name) for f in dataclasses.fields(schema(notebook))}


def validate(notebook: str, values: dict[str, Any], where: str) -> Any:
    """The notebook's dataclass from `values` (over its defaults); `where` names their source in every error."""
    if notebook not in SCHEMAS:
        raise EncoderecError(f"{where}: no such notebook; the notebooks: {', '.join(SCHEMAS)}")
    cls = schema(notebook)
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key not in hints:
            raise EncoderecError(f"{where}.{key}: not a parameter of {notebook}; its parameters: "
                                 f"{', '.join(hints)}")
        if not _is_a(value, hints[key]):
            raise EncoderecError(f"{where}.{key}: expected {_describe(hints[key])}, got {value!r}")
        if key in CONFIGS:
            config, per_dataset = CONFIGS[key]
            for name, settings in (value.items() if per_dataset else [(None, value)]):
                config.from_dict(settings, f"{where}.{key}" + (f".{name}" if name else ""))
        if key == "models":  # each a TrainConfig's name, backbone and settings, with its own `seeds` if it has them
            for i, model in enumerate(value):
                TrainConfig.from_dict({k: v for k, v in model.items() if k != "seeds"}, f"{where}.models[{i}]")
    return cls(**values)


def of(notebook: str, profile: str, overrides: dict[str, Any] | None = None, params_dir: Path | None = None) -> Any:
    """The notebook's parameters: its defaults, then the profile's (params/<profile>.yaml, when there is one), then
    `overrides` (the notebook's `parameters`: what the runner or a papermill user passes)."""
    path = (params_dir or paths.project_root() / "params") / f"{profile}.yaml"
    from_profile = notebook_parameters(load_profile(profile, path.parent), notebook) if path.is_file() else {}
    return validate(notebook, {**from_profile, **(overrides or {})}, f"{notebook} parameters")


def notebook_parameters(profile: Profile, notebook: str) -> dict[str, Any]:
    """The profile's values of one notebook's parameters: the common ones it has, then its own."""
    names = fields(notebook)
    return {**{k: v for k, v in profile.common.items() if k in names}, **profile.notebooks.get(notebook, {})}


def load(name: str, params_dir: Path | None = None) -> Profile:
    """The profile params/<name>.yaml, every parameter of it checked against the notebooks' schemas."""
    profile = load_profile(name, params_dir)
    check_profile(profile)
    return profile


def check_profile(profile: Profile) -> None:
    """Every notebook, common and part parameter of `profile` against the schemas (see the module docstring)."""
    for key in profile.common:
        if not any(key in fields(nb) for nb in profile.notebooks if nb in SCHEMAS):
            raise EncoderecError(f"{profile.path}: common.{key} is not a parameter of any notebook of this profile")
    for notebook in profile.notebooks:
        where = f"{profile.path}: notebooks.{notebook}"
        validate(notebook, notebook_parameters(profile, notebook) if notebook in SCHEMAS else {}, where)
    for part, spec in profile.parts.items():
        notebook = spec["notebook"]
        overrides = {k: v for k, v in spec.items() if k != "notebook"}
        validate(notebook, {**notebook_parameters(profile, notebook), **overrides}, f"{profile.path}: parts.{part}")


def _is_a(value: Any, hint: Any) -> bool:
    """Whether a parsed YAML value fits a type hint (int is not a bool, a float may be an int)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_a(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if origin is Literal:
        return value in args
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(_is_a(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_is_a(k, args[0]) and _is_a(v, args[1]) for k, v in value.items())
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    if typing.get_origin(hint) is list and typing.get_origin(typing.get_args(hint)[0]) is Literal:
        return "a list of values from " + ", ".join(map(repr, typing.get_args(typing.get_args(hint)[0])))
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "").replace("NoneType", "None")
