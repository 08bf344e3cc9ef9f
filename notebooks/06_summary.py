# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python (encoderec)
#     language: python
#     name: encoderec
# ---

# %% [markdown]
# # 06 · Summary: the paper's claims, checked
#
# Everything here is read from what notebooks 02-05 wrote to `results/<profile>/`; nothing is trained anew.
# Each claim of the paper is tested in the paper's own form (Table 2 and Table 3: EncodeRec against every other
# backbone run) and, where it helps, in a weaker form (against its base encoder), each a family of settings. Every
# setting has the relative change of NDCG@10 with a 95 % interval over training runs (seeds) and users, and a
# per-user randomization test Holm-adjusted inside its family; it supports a claim only when both say so, and where
# it does not, the smallest change it could have detected decides between "no gain of the paper's size" and
# "inconclusive". The legend printed below, and `encoderec/summary.py` and `encoderec/stats.py`, give the rules.
# In the tables, `*` marks a model that supports the claim against its base encoder in that setting and `†` one
# significantly worse; cells are mean ± std over seeds.
#
# The paper's numbers come from other data releases and splits (Amazon 2023 for Table 2; Table 3's datasets, which
# its text calls Amazon-2018, look like the Amazon 2014 P5 split our Beauty and Toys are; 50K Beauty items for
# Table 1), so they are shown beside ours, never subtracted from them.

# %% tags=["parameters"]
profile = "default"  # the profile whose settings this notebook runs with (params/<profile>.yaml)
parameters = {}  # settings over the profile's: fields of encoderec.pipeline.parameters.Summary
data_dir = None
output_root = None

# %%
from dataclasses import asdict

import pandas as pd
from IPython.display import HTML, Markdown, display

from encoderec.core.io import write_text
from encoderec.pipeline import parameters as schema
from encoderec.report import notebook, paper, plots, summary

# %%
plots.setup_notebook()
p = schema.of("06_summary", profile, parameters)
run = notebook.start("06_summary", p, output_root, profile)
results = summary.load_results(run.read_results)
print(f"results/{profile}: {', '.join(results) or 'none'}; missing: "
      f"{', '.join(n for n in summary.EXPERIMENTS if n not in results) or 'none'}")

# %% [markdown]
# ## Verdicts

# %%
found = summary.claims(results)
# NBVAL_CHECK_OUTPUT
for claim in found:
    print(f"{claim.verdict:>17}  {claim.claim}")

# %%
print(summary.LEGEND)
display(HTML(summary.html_table([asdict(c) for c in found])))

# %% [markdown]
# ## Every setting behind the verdicts
# One row per claim, setting and comparison; the forest plot draws each with its interval, the change the paper
# reports for it, and the paper's own changes at the bottom.

# %%
behind = summary.settings_table(results)
display(HTML(summary.html_table(behind)))
forest = summary.forest_rows(results)
if (forest.source == "ours").any():
    run.figure(plots.forest(forest), "summary_forest", image=plots.forest_image(forest)).show()

# %% [markdown]
# ## Tables 1-3, ours and as published

# %%
marked = summary.marks(results)
for name, layout in summary.LAYOUTS.items():
    if name not in results:
        continue
    display(Markdown(f"### {layout.title}"), summary.marked_table(results[name], layout, name, marked))
    for table in layout.paper_tables:
        display(Markdown(f"Published: {paper.SOURCES[table]}"), paper.wide(table))

# %% [markdown]
# ## Semantic-ID collisions
# The paper reports no collision with EncodeRec; the collision rate at 3 levels is (items - distinct IDs) / items.

# %%
if "collisions" in results:
    display(summary.collision_table(results["collisions"]))
    rows = pd.DataFrame(results["collisions"]["rows"])
    run.figure(plots.collision_rates(rows), "summary_collision_rate", image=plots.collision_rates_image(rows)).show()

# %% [markdown]
# ## RESULTS.md and the report page
# The same sections, written as Markdown (readable on GitHub without running anything) and saved to
# `results/<profile>/summary.json`, from which the report's index page renders them.

# %%
parts = summary.sections(results, found, run.static_figures())
target = run.output_root / (p.results_md or f"results/{profile}/RESULTS.md")
write_text(target, summary.to_markdown(profile, parts, target, run.output_root))
run.save("summary", [asdict(c) for c in found], sections=[asdict(part) for part in parts],
         results_md=str(target.relative_to(run.output_root)))
print(f"wrote {target.relative_to(run.output_root)}")
if p.readme:  # the README's claim table, word for word the one above
    write_text(run.output_root / p.readme, summary.update_readme(run.output_root / p.readme, found))
    print(f"rewrote the claim table of {p.readme}")
