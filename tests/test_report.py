import json
import textwrap

import pytest

from encoderec import paths, profiles, report, runner, tables
from encoderec.errors import EncoderecError

NOTEBOOK = '''\
# %% tags=["parameters"]
profile = "default"
data_dir = None
output_root = None
scale = 1

# %%
from encoderec import report
run = report.start("01_demo", dict(profile=profile, scale=scale), output_root)
value = 21 * scale
run.save("demo", [{"metric": "answer", "value": value}])
print("value", value)
'''

FAILING = '''\
# %% tags=["parameters"]
profile = "default"
data_dir = None
output_root = None

# %%
x = 1

# %%
raise ValueError("boom in the second cell")
'''


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
    assert prov["parameters"] == {"profile": "t", "scale": 2}
    assert {"git", "machine", "environment", "wall_time_s", "started_at"} <= set(prov)
    import numpy
    import torch

    packages = prov["environment"]["packages"]
    assert packages["torch"] == torch.__version__ and packages["numpy"] == numpy.__version__
    assert set(report.KEY_PACKAGES) == set(packages)
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
        ("notebooks:\n  01_demo: {scael: 2}\n", r"t\.yaml: notebooks\.01_demo\.scael is not a parameter of 01_demo"),
        ("notebooks:\n  09_missing: {}\n", r"t\.yaml: notebooks\.09_missing: there is no notebooks/09_missing\.py"),
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
     ("parts:\n  x: {notebook: 01_demo, scael: 2}\n", r"p\.yaml: parts\.x\.scael is not a parameter of 01_demo"),
     ("parts:\n  y: {notebook: 01_demo}\n", r"--part x: not a part of profile p\.yaml \(parts: y\)")],
)
def test_bad_parts(project, parts, pattern):
    write_profile(project, "p", "notebooks:\n  01_demo: {}\n" + parts)
    with pytest.raises(EncoderecError, match=pattern):
        runner.run_report("p", part="x", dirs=project)


def test_real_profiles_are_valid(tmp_path):
    notebooks = paths.ReportDirs.default().notebooks
    declared = {}
    for source in sorted(notebooks.glob("*.py")):
        runner._to_ipynb(source, tmp_path / f"{source.stem}.ipynb")
        declared[source.stem] = runner._declared_parameters(tmp_path / f"{source.stem}.ipynb")
    for name in ("smoke", "default", "paper"):
        profile = profiles.load_profile(name)
        assert "00_data" in profile.notebooks
        profiles.notebook_parameters(profile, {nb: declared[nb] for nb in profile.notebooks})  # raises on a typo
        for part, spec in profile.parts.items():
            assert set(spec) - {"notebook"} <= declared[spec["notebook"]], f"{name}.yaml parts.{part}"


@pytest.mark.parametrize("source", sorted(paths.ReportDirs.default().notebooks.glob("*.py")), ids=lambda p: p.stem)
def test_parameter_cells_are_the_default_profile(source, tmp_path):
    """Opening a notebook in JupyterLab and running it reproduces the default profile's run (and reuses its caches)."""
    import jupytext

    cell = next(c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", []))
    defaults: dict = {}
    exec(cell.source, {}, defaults)  # the parameters cell is plain assignments
    profile = profiles.load_profile("default")
    wanted = {**{k: v for k, v in profile.common.items() if k in defaults}, **profile.notebooks[source.stem]}
    assert {k: defaults[k] for k in wanted} == wanted, f"{source.name}: parameters cell vs params/default.yaml"


def test_common_parameters_go_to_the_notebooks_that_declare_them(project):
    write_profile(project, "c", "common: {scale: 5}\nnotebooks:\n  01_demo: {}\n  02_fail: {}\n")
    with pytest.raises(EncoderecError, match="02_fail"):
        runner.run_report("c", dirs=project)
    assert json.loads((project.output_root / "results" / "c" / "demo.json").read_text())["rows"][0]["value"] == 105
    write_profile(project, "c", "common: {sclae: 5}\nnotebooks:\n  01_demo: {}\n")
    with pytest.raises(EncoderecError, match=r"c\.yaml: common\.sclae is not a parameter of any notebook"):
        runner.run_report("c", dirs=project)


def test_notebook_must_declare_the_injected_parameters(project):
    (project.notebooks / "03_bare.py").write_text('# %% tags=["parameters"]\nprofile = "x"\n')
    write_profile(project, "b", "notebooks:\n  03_bare: {}\n")
    with pytest.raises(EncoderecError, match=r"03_bare\.ipynb: the parameters cell must declare .*missing: data_dir, output_root"):
        runner.run_report("b", dirs=project)


def test_saved_results_are_strict_json(tmp_path):
    import numpy as np
    import pandas as pd

    run = report.start("x", {"profile": "t"}, tmp_path)
    frame = pd.DataFrame([{"model": "BM25", "seed": None, "score": np.float32(0.5)}, {"model": "A", "seed": 1, "score": 1.0}])
    path = run.save("strict", frame, std=float("nan"), nested=[{"p": np.float64("inf")}])
    saved = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert saved["rows"][0]["seed"] is None and saved["std"] is None and saved["nested"][0]["p"] is None
    assert saved["rows"][0]["score"] == 0.5


def test_backbone_names_resolve_to_trained_models(tmp_path):
    run = report.start("x", {"profile": "t"}, tmp_path)
    assert run.backbone("all-MiniLM-L6-v2") == ("all-MiniLM-L6-v2", None)
    with pytest.raises(EncoderecError, match=r"encoderec_models.json is missing: train EncodeRec-22M first .*--only 01"):
        run.backbone("EncodeRec-22M")
    rows = [{"name": "EncodeRec-22M", "backbone": "all-MiniLM-L6-v2", "seed": s, "path": f"/m/{s}"} for s in (0, 1)]
    run.save("encoderec_models", rows)
    assert run.backbone("EncodeRec-22M", 1) == ("/m/1", 1)
    assert run.backbone("EncodeRec-22M", 5) == ("/m/0", 0)  # no such seed: the first one
    assert run.base_encoder("EncodeRec-22M") == "all-MiniLM-L6-v2" and run.base_encoder("tfidf-svd") is None
    with pytest.raises(EncoderecError, match="lists no such model"):
        run.backbone("EncodeRec-110M")


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
    assert report.git_commit(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert report.git_commit(tmp_path)["dirty"] is True


def test_environment_hashes_the_lock_file_it_finds(tmp_path):
    import hashlib

    assert report.environment(tmp_path)["lock_sha256"] is None
    (tmp_path / "requirements.lock").write_text("numpy==2.0.0 --hash=sha256:00\n")
    expected = hashlib.sha256(b"numpy==2.0.0 --hash=sha256:00\n").hexdigest()
    assert report.environment(tmp_path)["lock_sha256"] == expected


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
data_dir = None
output_root = None

# %%
from encoderec import report
run = report.start("03_reader", dict(profile=profile), output_root)
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

    from encoderec import paths, runner

    root = Path(output_root)
    runner.run_report("c", dirs=paths.ReportDirs(root / "notebooks", root / "params", root))


COUNTED = '''\
# %% tags=["parameters"]
profile = "default"
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

    (project.notebooks / "04_counted.py").write_text(COUNTED)
    write_profile(project, "c", "notebooks:\n  04_counted: {}\n")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_run_profile, args=(str(project.output_root),)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(300)
    assert [w.exitcode for w in workers] == [0, 0]
    assert (project.output_root / "executions.txt").read_text() == "executed\n"
    assert "04_counted cached" in runner.run_report("c", dirs=project)
