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
# # 01 · Training EncodeRec
#
# EncodeRec fine-tunes a general sentence encoder so that an item's **title** (the query) lands next to its
# **document** (description, features, brand, categories) and away from the other documents of the batch:
# in-batch InfoNCE with temperature τ, 512 pairs per batch, learning rate 5e-5, warmup 10 % (the paper's setting).
# On a 2-core CPU the 512 in-batch negatives come from the GradCache loss, which embeds the batch in small
# chunks and gives the same gradients as one big batch.
#
# Items whose normalised title hashes into the held-out fraction are never trained on, in any dataset: they are
# the test set of the retrieval benchmark (`02_retrieval`). The trained folders are cached and reused by every
# later notebook; an interrupted run resumes from its last checkpoint.

# %% tags=["parameters"]
profile = "default"  # the profile whose settings this notebook runs with (params/<profile>.yaml)
parameters = {}  # settings over the profile's: fields of encoderec.pipeline.parameters.EncodeRec
data_dir = None
output_root = None

# %%
import pandas as pd
import plotly.express as px
from IPython.display import display

from encoderec.models import trainer
from encoderec.pipeline import parameters as schema
from encoderec.pipeline import runs
from encoderec.report import notebook, plots

# %%
plots.setup_notebook()
p = schema.of("01_encoderec", profile, parameters)
run = notebook.start("01_encoderec", p, output_root, profile)

# %% [markdown]
# ## The training corpus
# Every (title, document) pair of the training datasets, minus held-out titles, minus any item whose document is
# also a held-out item's document, minus empty texts and exact duplicates.

# %%
configs = runs.model_configs(p.models, p.seeds, p.training, p.held_out_fraction, f"params/{profile}.yaml")
pairs, corpus = trainer.training_pairs(configs[0], data_dir)
display(pd.DataFrame(corpus["datasets"]).T)
print(f"{len(pairs)} training pairs; first: {pairs[0]['query']!r} -> {pairs[0]['document'][:120]!r}")

# %% [markdown]
# ## Training
# Each model and seed is trained once; a finished folder is reused, an interrupted one resumes. EncodeRec+ (our
# extension, a model with `interaction_ratio` > 0) adds (title of an item, document of the item the same user bought
# next) pairs from the training part of every sequence (leave-one-out: no validation or test interaction of any
# user), `interaction_ratio` of them per metadata pair, mixed into the same batches; pairs that touch a held-out item
# are dropped like the metadata pairs. The table gives each model's interaction pairs from its training record.
# With `read_only` nothing is trained: a model this machine has not trained comes from its archived training
# record (the notebooks after this one then read its archived units), or is listed as pending.

# %%
trained, pending, histories = runs.encoderec_models(configs, data_dir, run.policy)
trained_table = pd.DataFrame(trained)
display(trained_table.drop(columns=["path"], errors="ignore"), pd.DataFrame(pending))

# %% [markdown]
# ## Training loss
# InfoNCE over 512 candidates starts near ln(512) ≈ 6.2 for an untrained encoder; the pretrained encoders start
# far lower because titles and descriptions already share words.

# %%
curves = pd.DataFrame([{"model": label, **point} for label, history in histories.items() for point in history])
if len(curves):
    fig = px.line(curves, x="step", y="loss", color="model", markers=True, title="Training loss (InfoNCE)")
    run.figure(fig, "encoderec_training_loss").show()

# %%
run.save("encoderec_models", trained, corpus=corpus, pending=pending)
