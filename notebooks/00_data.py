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
# # 00 · The data
#
# Every experiment of this report runs on real Amazon review data: the local mirror described in
# `shared/data/README.md` (or any folder in the same layout, see `python -m encoderec data convert`).
# This notebook recomputes the mirror's statistics table, then looks at what matters for the later
# experiments: how long the user sequences are, how skewed item popularity is, how much text each item
# has (and how much an encoder truncates), and which items share identical text — those can never be
# separated by any encoder, so they bound every collision analysis.

# %% tags=["parameters"]
profile = "default"  # the profile whose settings this notebook runs with (params/<profile>.yaml)
parameters = {}  # settings over the profile's: fields of encoderec.pipeline.parameters.Data
data_dir = None
output_root = None

# %%
import pandas as pd
from IPython.display import HTML, display
from transformers import AutoTokenizer

from encoderec.data import dataset as data
from encoderec.data import describe
from encoderec.models.embeddings import resolve_backbone
from encoderec.pipeline import parameters as schema
from encoderec.report import notebook, plots

# %%
plots.setup_notebook()
p = schema.of("00_data", profile, parameters)
run = notebook.start("00_data", p, output_root, profile)
loaded = {name: data.load_dataset(name, data_dir) for name in p.datasets}

# %% [markdown]
# ## Statistics
# The same columns as the mirror's README; `duplicate_texts` counts items whose raw (title, description)
# pair repeats an earlier item's.

# %%
# NBVAL_CHECK_OUTPUT
stat_rows = {name: data.stats(ds) for name, ds in loaded.items()}
stats = pd.DataFrame(stat_rows.values()).set_index("dataset").convert_dtypes()
print(stats.drop(columns=["duplicate_texts_normalised"]).to_string())

# %% [markdown]
# ## Sequence lengths
# Leave-one-out uses the last item for test and the one before for validation, so a 5-core user trains
# on three items. Most users sit at that floor.

# %%
with_inter = {n: ds for n, ds in loaded.items() if ds.has_interactions}
lengths = pd.DataFrame([(n, len(s)) for n, ds in with_inter.items() for s in ds.sequences],
                       columns=["dataset", "sequence length"])
length_summary = lengths.groupby("dataset")["sequence length"].describe(percentiles=[0.5, 0.9, 0.99])
display(length_summary.round(2))
run.figure(plots.distribution(lengths[lengths["sequence length"] <= 60], "sequence length", "dataset",
                              "Sequence length (users with at most 60 interactions)"), "data_sequence_lengths")

# %% [markdown]
# ## Item popularity
# A steep head makes popularity a strong baseline and rewards models that memorise it; the Gini
# coefficient summarises the skew (0 = uniform).

# %%
popularity = {n: data.item_popularity(ds) for n, ds in with_inter.items()}
popularity_summary = describe.popularity_summary(popularity)
display(popularity_summary.round(3))
run.figure(plots.rank_curve(popularity, "Item popularity (rank / frequency)", "item rank", "interactions"),
           "data_item_popularity")

# %% [markdown]
# ## Text per item
# The query of the contrastive task is the title; the document is description, features, brand and
# categories. Lengths are in word pieces of the backbone's tokenizer, so the share above its
# `max_seq_length` is the share of documents the encoder truncates.

# %%
tokenizer = AutoTokenizer.from_pretrained(str(resolve_backbone(p.tokenizer_backbone)))
max_tokens = min(tokenizer.model_max_length, 256)
tokens = describe.token_lengths(loaded, tokenizer)
text_summary = describe.length_summary(tokens, max_tokens)
display(text_summary.round(3))
run.figure(plots.distribution(tokens[tokens["text"] == "document"], "tokens", "dataset",
                              f"Document length in {p.tokenizer_backbone} word pieces (truncated at {max_tokens})",
                              log_y=False), "data_document_tokens")

# %% [markdown]
# ## Identical texts
# Items with the same (title, description) get the same embedding from every encoder, so their semantic
# IDs collide whatever the tokenizer: later collision tables count them apart. Some examples (escaped):

# %%
duplicates = {n: data.duplicate_text_groups(ds) for n, ds in loaded.items()}
examples = pd.DataFrame(
    [(n, len(g), ", ".join(map(str, g)), ds.items[g[0]]["title"][:90])
     for n, ds in loaded.items() for g in duplicates[n][:3]],
    columns=["dataset", "items in group", "item idx", "title"],
)
display(HTML(examples.to_html(index=False, escape=True)))

# %% [markdown]
# ## The same products in two releases
# Industrial2018 and Office2018 add metadata-only text for contrastive training, but they repeat products
# of Scientific and Office. Held-out retrieval items must be kept out of training across all datasets,
# matched on the normalised title; this is how many titles are shared.

# %%
titles = {n: {data.normalised_title(i["title"]) for i in ds.items} - {""} for n, ds in loaded.items()}
overlap = pd.DataFrame(
    [(a, b, len(titles[a] & titles[b])) for a in titles for b in titles if a < b and titles[a] & titles[b]],
    columns=["dataset A", "dataset B", "shared normalised titles"],
)
display(overlap)

# %%
rows = [
    {**stat_rows[n], "duplicate_groups": len(duplicates[n]),
     **{f"{t}_tokens_median": float(text_summary.loc[(n, t), "median"]) for t in ("title", "document")},
     "document_truncated_share": float(text_summary.loc[(n, "document"), "truncated"]),
     **({"gini": float(popularity_summary.loc[n, "gini"])} if n in popularity else {})}
    for n in loaded
]
run.save("data", rows, title_overlap=overlap.to_dict(orient="records"), max_tokens=max_tokens)
