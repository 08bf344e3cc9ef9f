import dataclasses
import json
import textwrap
import typing

import pytest

from encoderec.core import paths
from encoderec.core.errors import EncoderecError
from encoderec.models import semantic_ids
from encoderec.pipeline import parameters, provenance
from encoderec.report import notebook as report
from encoderec.report import runner, tables

NOTEBOOK = '''\
# %% tags=["parameters"]
profile = "default"
parameters = {}
data_dir = None
output_root = None

# %%
from encoderec.report import notebook
run = notebook.start("01_demo", parameters, output_root, profile)
value = 21 * parameters["scale"]
run.save("demo", [{"metric": "answer", "value": value}])
print("value", value)
'''

FAILING = '''\
# %% tags=["parameters"]
profile = "default"
parameters = {}
data_dir = None
output_root = None

# %%
x = 1

# %%
raise ValueError("boom in the second cell")
'''


@dataclasses.dataclass(frozen=True)
class Demo:
    scale: int = 1


@dataclasses.dataclass(frozen=True)
class Nothing:
    pass


@pytest.fixture(autouse=True)
def demo_schemas(monkeypatch):
    """The test notebooks' parameter schemas, beside the real notebooks'."""
    for name, schema in {"01_demo": Demo, "02_fail": Nothing, "03_reader": Nothing}.items():
        monkeypatch.setitem(parameters.SCHEMAS, name, schema)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "params").mkdir()
    (tmp_path / "notebooks" / "01_demo.py").write_text(NOTEBOOK)
    (tmp_path / "notebooks" / "02_fail.py").write_text(FAILING)
    return paths.ReportDirs(tmp_path / "notebooks", tmp_path / "params", tmp_path)


def write_profile(dirs, name, text):
    (dirs.params / f"{name}.yaml").write_text(textwrap.dedent(text))


def test_runs_writes_provenance_and_skips_unchanged(project):
    write_profile(project, "t", """\
        description: a test profile
        common: {}
        notebooks:
          01_demo: {scale: 2}
        """)
    summary = runner.run_report("t", dirs=project)
    assert "01_demo ok" in summary
    result = json.loads((project.output_root / "results" / "t" / "demo.json").read_text())
    assert result["rows"] == [{"metric": "answer", "value": 42}]
    prov = result["provenance"]
    assert prov["parameters"] == {"profile": "t", "scale": 2}  # every parameter of its schema, and the profile
    assert {"git", "machine", "environment", "wall_time_s", "started_at"} <= set(prov)
    import numpy
    import torch

    packages = prov["environment"]["packages"]
    assert packages["torch"] == torch.__version__ and packages["numpy"] == numpy.__version__
    assert set(provenance.KEY_PACKAGES) == set(packages)
    out = project.reports("t")
    assert (out / "01_demo.ipynb").is_file() and (out / "01_demo.html").is_file()
    index = (out / "index.html").read_text()
    assert "01_demo" in index and "demo.json" in index and "a test profile" in index

    assert "01_demo cached" in runner.run_report("t", dirs=project)
    write_profile(project, "t", "notebooks:\n  01_demo: {scale: 3}\n")
    assert "01_demo ok" in runner.run_report("t", dirs=project)
    assert json.loads((project.output_root / "results" / "t" / "demo.json").read_text())["rows"][0]["value"] == 63
    assert "01_demo ok" in runner.run_report("t", dirs=project, force=True)


def test_failing_cell_names_notebook_and_cell(project):
    write_profile(project, "f", "notebooks:\n  01_demo: {}\n  02_fail: {}\n")
    with pytest.raises(EncoderecError, match=r"notebooks/02_fail\.py failed at cell \d+ .*ValueError: boom") as err:
        runner.run_report("f", dirs=project)
    assert "\n" not in str(err.value)
    index = (project.reports("f") / "index.html").read_text()
    assert "failed" in index and "boom in the second cell" in index
    assert (project.reports("f") / "02_fail.html").is_file()


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("notebooks:\n  01_demo: {scael: 2}\n", r"t\.yaml: notebooks\.01_demo\.scael: not a parameter of 01_demo; "
                                                r"its parameters: scale"),
        ("notebooks:\n  01_demo: {scale: two}\n", r"t\.yaml: notebooks\.01_demo\.scale: expected int, got 'two'"),
        ("notebooks:\n  09_missing: {}\n", r"t\.yaml: notebooks\.09_missing: no such notebook; the notebooks: "),
        ("notebooks: [01_demo]\n", r"t\.yaml: notebooks must be a mapping"),
        ("notebooks:\n  01_demo: {scale: [1\n", r"t\.yaml: line \d+: invalid YAML"),
        ("notebok:\n  01_demo: {}\n", r"t\.yaml: unknown key 'notebok'"),
        ("description: nothing\n", r"t\.yaml: 'notebooks' is empty"),
    ],
)
def test_bad_profiles(project, text, pattern):
    write_profile(project, "t", text)
    with pytest.raises(EncoderecError, match=pattern):
        runner.run_report("t", dirs=project)


def test_unknown_profile_and_only(project):
    with pytest.raises(EncoderecError, match=r"nope\.yaml: no such profile"):
        runner.run_report("nope", dirs=project)
    write_profile(project, "t", "notebooks:\n  01_demo: {}\n")
    with pytest.raises(EncoderecError, match=r"--only 02_fail: not part of profile t\.yaml"):
        runner.run_report("t", only=["02_fail"], dirs=project)


def test_a_part_runs_its_notebook_with_parameters_replaced(project):
    write_profile(project, "p", "notebooks:\n  01_demo: {scale: 1}\n  02_fail: {}\n"
                                "parts:\n  big: {notebook: 01_demo, scale: 3}\n")
    summary = runner.run_report("p", part="big", dirs=project)
    assert "01_demo ok" in summary and "02_fail not run" in summary
    assert json.loads((project.output_root / "results" / "p" / "demo.json").read_text())["rows"][0]["value"] == 63
    summary = runner.run_report("p", only=["01_demo"], dirs=project)  # the full run is not mistaken for the part
    assert "01_demo ok" in summary
    assert json.loads((project.output_root / "results" / "p" / "demo.json").read_text())["rows"][0]["value"] == 21


@pytest.mark.parametrize(
    "parts, pattern",
    [("parts:\n  x: {notebook: 09_nope}\n", r"p\.yaml: parts\.x\.notebook must name a notebook of this profile"),
     ("parts:\n  x: {notebook: 01_demo, scael: 2}\n", r"p\.yaml: parts\.x\.scael: not a parameter of 01_demo"),
     ("parts:\n  y: {notebook: 01_demo}\n", r"--part x: not a part of profile p\.yaml \(parts: y\)")],
)
def test_bad_parts(project, parts, pattern):
    write_profile(project, "p", "notebooks:\n  01_demo: {}\n" + parts)
    with pytest.raises(EncoderecError, match=pattern):
        runner.run_report("p", part="x", dirs=project)


@pytest.mark.parametrize("name", ["smoke", "default", "paper"])
def test_real_profiles_are_valid(name):
    profile = parameters.load(name)  # every notebook, common and part parameter checked against the schemas
    assert "00_data" in profile.notebooks and set(profile.notebooks) <= set(parameters.SCHEMAS)


@pytest.mark.parametrize("source", sorted(paths.ReportDirs.default().notebooks.glob("*.py")), ids=lambda p: p.stem)
def test_a_notebook_takes_its_parameters_from_its_schema(source):
    """The parameters cell holds only what the runner injects (JupyterLab: the default profile as it is), and the
    notebook builds its parameters from its own schema: the schema is the only home of the defaults."""
    import jupytext

    cells = jupytext.read(source).cells
    cell = next(c for c in cells if "parameters" in c.metadata.get("tags", []))
    declared: dict = {}
    exec(cell.source, {}, declared)  # the parameters cell is plain assignments
    assert declared == {"profile": "default", "parameters": {}, "data_dir": None, "output_root": None}
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert f'schema.of("{source.stem}", profile, parameters)' in code
    assert f'notebook.start("{source.stem}", p, output_root, profile)' in code


def test_the_schemas_defaults_are_the_default_profile():
    """Running a notebook by hand without a profile file gives what the default profile runs."""
    profile = parameters.load("default")
    for notebook, values in profile.notebooks.items():
        defaults = parameters.fields(notebook)
        given = {**{k: v for k, v in profile.common.items() if k in defaults}, **values}
        assert {k: defaults[k] for k in given} == given, notebook


def test_a_bad_profile_fails_at_load_naming_the_file_the_key_and_what_is_allowed(project):
    write_profile(project, "b", "notebooks:\n  05_tiger: {tiger: {layer: 2}}\n")
    with pytest.raises(EncoderecError, match=r"b\.yaml: notebooks\.05_tiger\.tiger: unknown key 'layer'; known "
                                             r"keys: layers, ") as err:
        parameters.load("b", project.params)
    assert "\n" not in str(err.value)
    write_profile(project, "b", "notebooks:\n  04_unisrec: {modes: inductive}\n")
    with pytest.raises(EncoderecError, match=r"04_unisrec\.modes: expected a list of values from "
                                             r"'inductive', 'transductive', got 'inductive'"):
        parameters.load("b", project.params)
    write_profile(project, "b", "notebooks:\n  02_retrieval: {corpus: held-out}\n")
    with pytest.raises(EncoderecError, match=r"02_retrieval\.corpus: expected one of 'all', 'held_out', got 'held-out'"):
        parameters.load("b", project.params)


def test_the_schemas_choices_are_the_models():
    assert typing.get_args(parameters.IdVariant) == semantic_ids.ID_VARIANTS
    tokenizers = typing.get_type_hints(parameters.SemanticIds)["tokenizers"]
    assert typing.get_args(typing.get_args(tokenizers)[0]) == semantic_ids.TOKENIZERS


def test_common_parameters_go_to_the_notebooks_that_declare_them(project):
    write_profile(project, "c", "common: {scale: 5}\nnotebooks:\n  01_demo: {}\n  02_fail: {}\n")
    with pytest.raises(EncoderecError, match="02_fail"):
        runner.run_report("c", dirs=project)
    assert json.loads((project.output_root / "results" / "c" / "demo.json").read_text())["rows"][0]["value"] == 105
    write_profile(project, "c", "common: {sclae: 5}\nnotebooks:\n  01_demo: {}\n")
    with pytest.raises(EncoderecError, match=r"c\.yaml: common\.sclae is not a parameter of any notebook"):
        runner.run_report("c", dirs=project)


def test_saved_results_are_strict_json(tmp_path):
    import numpy as np
    import pandas as pd

    run = report.start("x", {"profile": "t"}, tmp_path)
    frame = pd.DataFrame([{"model": "BM25", "seed": None, "score": np.float32(0.5)}, {"model": "A", "seed": 1, "score": 1.0}])
    path = run.save("strict", frame, std=float("nan"), nested=[{"p": np.float64("inf")}])
    saved = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert saved["rows"][0]["seed"] is None and saved["std"] is None and saved["nested"][0]["p"] is None
    assert saved["rows"][0]["score"] == 0.5


def test_seed_summary_gives_mean_and_std_over_seeds():
    import pandas as pd

    table = pd.DataFrame([{"model": "b", "seed": 0, "R": 0.5, "n": 3}, {"model": "a", "seed": 0, "R": 0.2, "n": 1},
                          {"model": "a", "seed": 1, "R": 0.4, "n": 2}])
    out = tables.seed_summary(table, ["model"], {"R": "Recall", "n": "count"}, digits={"n": 0})
    assert out.to_dict(orient="records") == [{"model": "b", "Recall": "0.5000", "count": "3"},
                                             {"model": "a", "Recall": "0.3000 ± 0.1414", "count": "2 ± 1"}]
    single = tables.seed_summary(table[table.seed == 0], ["model"], {"R": "Recall"})
    assert single["Recall"].tolist() == ["0.5000", "0.2000"]


def test_git_dirty_flag_ignores_the_outputs(tmp_path):
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "r.json").write_text("{}")
    (tmp_path / "RESULTS.md").write_text("old\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    (tmp_path / "results" / "r.json").write_text('{"a": 1}')
    (tmp_path / "RESULTS.md").write_text("new\n")  # the summary of an earlier step of the same report
    assert provenance.git_commit(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_commit(tmp_path)["dirty"] is True


def test_environment_hashes_the_lock_file_it_finds(tmp_path):
    import hashlib

    assert provenance.environment(tmp_path)["lock_sha256"] is None
    (tmp_path / "requirements.lock").write_text("numpy==2.0.0 --hash=sha256:00\n")
    expected = hashlib.sha256(b"numpy==2.0.0 --hash=sha256:00\n").hexdigest()
    assert provenance.environment(tmp_path)["lock_sha256"] == expected


def test_figures_share_the_installed_plotly_bundle(tmp_path):
    import plotly.graph_objects as go
    from plotly.offline import get_plotlyjs

    run = report.start("x", {"profile": "t"}, tmp_path)
    bundle = run.figures_dir / "plotly.min.js"
    bundle.parent.mkdir(parents=True)
    bundle.write_text("/* an older plotly.js */")
    run.figure(go.Figure(go.Bar(x=["a", "b"], y=[1, 2])), "bars")
    assert bundle.read_text() == get_plotlyjs()  # a stale bundle is replaced, not kept
    page = (run.figures_dir / "bars.html").read_text()
    assert '<script charset="utf-8" src="plotly.min.js"></script>' in page and 'id="bars"' in page
    assert not (run.figures_dir / "bars.png").exists()


def test_the_kernel_is_this_interpreter_even_with_another_registered(tmp_path, monkeypatch):
    """A kernel named 'encoderec' in the user's Jupyter folder (another clone's) must not run our notebooks."""
    import sys
    from pathlib import Path

    from jupyter_client.kernelspec import KernelSpecManager

    stale = tmp_path / "user" / "kernels" / runner.KERNEL_NAME
    stale.mkdir(parents=True)
    (stale / "kernel.json").write_text(json.dumps({"argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f",
                                                            "{connection_file}"], "display_name": "stale",
                                                   "language": "python"}))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")  # Jupyter's own choice outside a venv: the user's folder first
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    assert KernelSpecManager().get_kernel_spec(runner.KERNEL_NAME).argv[0] == "/nonexistent/python"
    runner.ensure_kernel()
    spec = KernelSpecManager().get_kernel_spec(runner.KERNEL_NAME)
    assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve()


READER = '''\
# %% tags=["parameters"]
profile = "default"
parameters = {}
data_dir = None
output_root = None

# %%
from encoderec.report import notebook
run = notebook.start("03_reader", parameters, output_root, profile)
upstream = run.read_results("demo")["rows"][0]["value"]
optional = run.read_results("later", missing_ok=True)
run.save("reader", [{"seen": upstream, "later": optional is not None}])
'''


def test_a_notebook_reruns_when_the_results_it_read_change(project):
    (project.notebooks / "03_reader.py").write_text(READER)
    write_profile(project, "d", "notebooks:\n  01_demo: {scale: 1}\n  03_reader: {}\n")
    assert "01_demo ok, 03_reader ok" in runner.run_report("d", dirs=project)
    assert "01_demo cached, 03_reader cached" in runner.run_report("d", dirs=project)
    reader = project.output_root / "results" / "d" / "reader.json"

    # 01 re-run alone with other results (as a --part or a new seed would): 03 must not serve the old ones
    write_profile(project, "d", "notebooks:\n  01_demo: {scale: 2}\n  03_reader: {}\n")
    assert "01_demo ok" in runner.run_report("d", only=["01_demo"], dirs=project)
    assert "01_demo cached, 03_reader ok" in runner.run_report("d", dirs=project)
    assert json.loads(reader.read_text())["rows"] == [{"seen": 42, "later": False}]

    # a results file it found absent appears: re-run too
    report.start("x", {"profile": "d"}, project.output_root).save("later", [{"v": 1}])
    assert "03_reader ok" in runner.run_report("d", dirs=project)
    assert json.loads(reader.read_text())["rows"] == [{"seen": 42, "later": True}]
    assert "03_reader cached" in runner.run_report("d", dirs=project)


def test_read_results_names_the_missing_file_and_the_fix(tmp_path):
    run = report.start("x", {"profile": "t"}, tmp_path)
    with pytest.raises(EncoderecError, match=r"results/t/demo\.json: no such results; run the notebook that writes"):
        run.read_results("demo")
    assert run.read_results("demo", missing_ok=True) is None


def _run_profile(output_root: str) -> None:
    from pathlib import Path

    from encoderec.core import paths
    from encoderec.report import runner

    root = Path(output_root)
    runner.run_report("c", dirs=paths.ReportDirs(root / "notebooks", root / "params", root))


COUNTED = '''\
# %% tags=["parameters"]
profile = "default"
parameters = {}
data_dir = None
output_root = None

# %%
import time
from pathlib import Path
with open(Path(output_root) / "executions.txt", "a") as f:
    f.write("executed\\n")
time.sleep(2)
'''


def test_two_report_runs_of_one_profile_take_turns(project):
    """Started at once, the second waits for the first and then finds its notebook up to date: one execution."""
    import multiprocessing

    (project.notebooks / "06_summary.py").write_text(COUNTED)
    write_profile(project, "c", "notebooks:\n  06_summary: {}\n")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_run_profile, args=(str(project.output_root),)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(300)
    assert [w.exitcode for w in workers] == [0, 0]
    assert (project.output_root / "executions.txt").read_text() == "executed\n"
    assert "06_summary cached" in runner.run_report("c", dirs=project)
