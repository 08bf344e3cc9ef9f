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
profile = "default"
data_dir = None
output_root = None
held_out_fraction = 0.2
models = [{"name": "EncodeRec-22M", "backbone": "all-MiniLM-L6-v2"}]  # a model may list its own "seeds"
seeds = [0]
training = {
    "datasets": ["Scientific", "Office", "Industrial2018", "Office2018"],
    "batch_size": 512,
    "mini_batch_size": 32,
    "learning_rate": 5e-5,
    "warmup_ratio": 0.1,
    "epochs": 1.0,
    "temperature": 0.05,
    "max_seq_length": 64,
}
archive = False  # keep every model's training record in results/<profile>/runs/encoderec/ too (encoderec/archive.py)
archive_only = False  # train nothing: the models in this machine's cache, else their archived records

# %%
import time

import pandas as pd
import plotly.express as px
from IPython.display import display

from encoderec import plots, report, runs, trainer

plots.setup_notebook()
run = report.start("01_encoderec", dict(profile=profile, held_out_fraction=held_out_fraction, models=models,
                                        seeds=seeds, training=training, archive=archive, archive_only=archive_only),
                    output_root)

# %% [markdown]
# ## The training corpus
# Every (title, document) pair of the training datasets, minus held-out titles, minus any item whose document is
# also a held-out item's document, minus empty texts and exact duplicates.

# %%
configs = [
    trainer.TrainConfig.from_dict({**training, **{k: v for k, v in m.items() if k != "seeds"}, "seed": seed,
                                   "held_out_fraction": held_out_fraction}, source=f"params/{profile}.yaml")
    for m in models for seed in m.get("seeds", seeds)
]
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
# With `archive_only` nothing is trained: a model this machine has not trained comes from its archived training
# record (the notebooks after this one then read its archived units), or is listed as pending.

# %%
trained, pending, histories = [], [], {}
for cfg in configs:
    started = time.time()
    found = runs.encoderec_model(cfg, data_dir, archive=run.archive, cached_only=archive_only)
    if found is None:
        pending.append({"name": cfg.name, "seed": cfg.seed, "pending": "neither trained here nor archived"})
        continue
    path, info = found
    histories[f"{cfg.name} (seed {cfg.seed})"] = info["loss_history"]
    trained.append({"name": cfg.name, "backbone": cfg.backbone, "seed": cfg.seed, "path": path,
                    "pairs": info["corpus"]["pairs"], "interaction_ratio": cfg.interaction_ratio,
                    "interaction pairs": info["corpus"].get("interactions", {}).get("pairs", 0),
                    "train_wall_time_s": info["wall_seconds"],
                    "this_run_s": round(time.time() - started, 1),
                    "final_loss": info["loss_history"][-1]["loss"] if info["loss_history"] else None,
                    **{f"held-out {k.replace('_cosine_', ' ')}": v for k, v in info["held_out_metrics"].items()
                       if k.endswith(("ndcg@10", "recall@10"))}})
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
