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
# # 03 · Semantic IDs and collisions
#
# TIGER turns every item embedding into a short tuple of codes, its **semantic ID**: an RQ-VAE quantises the
# embedding residually with 3 levels of 256 codes. Two items that get the same three codes **collide**; TIGER then
# appends a 4th code (0, 1, 2, ...) to tell them apart, a code that carries no meaning. The paper says that with
# EncodeRec's embeddings "EncodeRec eliminates Semantic ID collisions entirely". We test that here.
#
# For each dataset, backbone, tokenizer and seed: fit the tokenizer on the embeddings of the **training items**
# (the items of the leave-one-out training sequences), give every item its ID, and measure
#
# * the **collision rate** at 1, 2 and 3 levels, (items − distinct IDs) / items, the largest group, and the share of
#   items that need a non-zero 4th code;
# * codebook **usage** and normalised **entropy** per level, and the relative reconstruction error;
# * colliding items whose text is **identical** to another item of their group (no encoder can separate them)
#   versus different text, and the **avoidable** collision rate once identical texts may share an ID;
# * whether a Hungarian re-assignment of the last level inside each prefix group makes the 3-code IDs unique
#   without a 4th code (reported apart: it changes the IDs TIGER would train on).
#
# Backbones: a TF-IDF + SVD baseline (no language model), the base sentence encoders, and the EncodeRec models of
# `01_encoderec` (for seed *s*, the EncodeRec model trained with seed *s* when there is one). Tokenizers: the
# RQ-VAE (`rqvae`) and residual k-means (`rkmeans`, no network). Fitted IDs are cached and reused by `05_tiger`.

# %% tags=["parameters"]
profile = "default"  # the profile whose settings this notebook runs with (params/<profile>.yaml)
parameters = {}  # settings over the profile's: fields of encoderec.pipeline.parameters.SemanticIds
data_dir = None
output_root = None

# %%
import numpy as np
import pandas as pd
import plotly.express as px
from IPython.display import display

from encoderec.models import collisions
from encoderec.models.rqvae import RQVAEConfig
from encoderec.pipeline import parameters as schema
from encoderec.pipeline import runs
from encoderec.report import notebook, plots, summary, tables

# %%
plots.setup_notebook()
p = schema.of("03_semantic_ids", profile, parameters)
run = notebook.start("03_semantic_ids", p, output_root, profile)
print(RQVAEConfig(**p.rqvae))

# %% [markdown]
# ## The catalogues
# Every item is embedded from its full text (title, then description, features, brand and categories). Items
# whose text repeats elsewhere in the catalogue are counted: whatever the encoder, they get the same embedding.

# %%
# NBVAL_CHECK_OUTPUT
catalogues = {name: runs.catalogue(name, data_dir, p.max_items) for name in p.datasets}
catalogue_table = pd.DataFrame([{
    "dataset": name, "items": len(c.items), "fit (training) items": len(c.fit_items),
    "distinct texts": len(set(c.texts)), "items sharing their text": len(c.texts) - len(set(c.texts)),
} for name, c in catalogues.items()])
print(catalogue_table.to_string(index=False))

# %% [markdown]
# ## Tokenize
# One fit per dataset × backbone × tokenizer × seed (cached: a re-run only reads the IDs back). With `archive`
# (the paper profile), every tokenization is also kept in `results/<profile>/runs/semantic_ids/`, committed, and
# read from there first: a campaign spread over sessions encodes each catalogue with each model once.

# %%
table, ids, pending = tables.tokenizations(catalogues, p.backbones, p.tokenizers, p.seeds, p.rqvae, run.models,
                                           run.policy)
display(pending)  # when read only: neither archived nor cached
print(f"{len(table)} tokenizations, {table.fit_seconds.sum():.0f} s of fitting (for cached IDs, the time of the "
      "run that made them)")

# %% [markdown]
# ## The collision table
# Mean over seeds (± standard deviation where there are several). `coll@3` is the share of items whose 3-code ID
# is not their own: the paper's claim is that it is 0 for EncodeRec. `avoidable` discounts items whose text is
# identical to another item's in the same ID. `max group` is the largest number of items sharing one ID, i.e.
# the largest 4th code + 1.

# %%
KEYS = ["dataset", "backbone", "tokenizer"]
SHOWN = {"collision_rate@1": "coll@1", "collision_rate@2": "coll@2", "collision_rate@3": "coll@3",
         "avoidable_collision_rate": "avoidable", "max_group": "max group", "usage@1": "usage@1",
         "usage@2": "usage@2", "usage@3": "usage@3", "entropy@3": "entropy@3", "reconstruction_error": "rel. error",
         "colliding_identical_text": "colliding, same text", "colliding_different_text": "colliding, other text"}
counts = {k: 0 for k in SHOWN if k.startswith(("max_", "colliding"))}  # whole numbers
collision_table = tables.seed_summary(table, KEYS, SHOWN, digits=counts)

# %%
print(collision_table.to_string(index=False))

# %% [markdown]
# ## Does EncodeRec eliminate collisions?
# Definition used: a tokenizer **eliminates collisions** on a catalogue when every item gets its own 3-code ID
# from the RQ-VAE (collision rate @ 3 = 0, no 4th code needed), for every seed. The weaker claims checked beside
# it: EncodeRec has **fewer** collisions than its base encoder on the same catalogue and seed, and none once items
# with identical text may share an ID.

# %%
verdict_table = pd.DataFrame(collisions.elimination(table, {b: run.models.base_encoder(b) for b in p.backbones}))
display(verdict_table.round(4))
verdict, statement = summary.collision_verdict({"verdict": verdict_table.to_dict(orient="records")})
print(f"Claim 'EncodeRec eliminates Semantic ID collisions entirely': {verdict.upper()}. {statement}")

# %% [markdown]
# ## Making the 3-code IDs unique without a 4th code
# Inside each group of items sharing the first two codes, the Hungarian algorithm gives the colliding items
# distinct third codes at the least total distance. It fails only where a prefix group holds more items than the
# codebook has codes. The IDs change for the items listed; TIGER's default (the 4th code) is what `05_tiger` uses.

# %%
hungarian = table[KEYS + ["seed", "collision_rate@3", "hungarian_possible", "hungarian_changed"]]
display(hungarian[hungarian.tokenizer == "rqvae"].drop(columns="tokenizer").round(4))

# %% [markdown]
# ## Pictures
# Collision rate at 3 levels per catalogue and backbone (RQ-VAE, mean and std over seeds), the codebook usage per level,
# and how large the collision groups are.

# %%
run.figure(plots.collision_rates(table), "collision_rate").show()

# %%
usage = table.melt(id_vars=KEYS + ["seed"], value_vars=[f"usage@{level}" for level in (1, 2, 3)],
                   var_name="level", value_name="codebook usage")
usage["level"] = usage["level"].str.removeprefix("usage@")
fig = px.bar(usage.groupby(KEYS + ["level"], sort=False, as_index=False)["codebook usage"].mean(), x="level",
             y="codebook usage", color="backbone", barmode="group", facet_col="tokenizer", facet_row="dataset",
             height=220 * len(p.datasets), title="Share of each level's codes used by at least one item")
run.figure(fig, "codebook_usage").show()

# %%
sizes = []
for (name, backbone, kind, seed), result in ids.items():
    if kind == "rqvae" and seed == p.seeds[0] and name == p.map_dataset:
        for size, count in zip(*np.unique(collisions.group_sizes(result.codes), return_counts=True)):
            sizes.append({"backbone": backbone, "items sharing an ID": int(size), "IDs": int(count)})
fig = px.bar(pd.DataFrame(sizes), x="items sharing an ID", y="IDs", color="backbone", barmode="group", log_y=True,
             title=f"{p.map_dataset}, RQ-VAE seed {p.seeds[0]}: how many IDs are shared by 1, 2, 3, ... items")
run.figure(fig, "group_sizes").show()

# %% [markdown]
# ## The embedding space coloured by first code
# UMAP of each backbone's item embeddings of one catalogue, each item coloured by its first RQ-VAE code (the 11
# most frequent codes, the rest grey as "other"). A good first level splits the map into contiguous regions.

# %%
cat, seed = catalogues[p.map_dataset], p.seeds[0]
for backbone in [b for b in p.backbones if (p.map_dataset, b, "rqvae", seed) in ids]:
    coordinates = runs.item_map(p.map_dataset, backbone, seed, cat.texts, run.models.encoder, run.policy)
    if coordinates is None:
        continue
    first = ids[(p.map_dataset, backbone, "rqvae", seed)].codes[:, 0]
    top = set(pd.Series(first).value_counts().index[:11])
    labels = [f"code {c:03d}" if c in top else "other" for c in first]
    fig = plots.embedding_map(coordinates, labels, cat.titles, f"{p.map_dataset}: {backbone}, coloured by first "
                              "RQ-VAE code")
    run.figure(fig, f"umap_first_code_{p.map_dataset}_{backbone}").show()

# %%
run.save("collisions", table, summary=collision_table.to_dict(orient="records"),
         verdict=verdict_table.to_dict(orient="records"), claim=statement, pending=pending.to_dict(orient="records"),
         catalogues=catalogue_table.to_dict(orient="records"), rqvae_config=vars(RQVAEConfig(**p.rqvae)))
