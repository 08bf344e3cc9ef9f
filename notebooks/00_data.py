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
profile = "default"
data_dir = None
output_root = None
datasets = ["Scientific", "Office", "Beauty", "Toys", "Industrial2018", "Office2018"]
tokenizer_backbone = "all-MiniLM-L6-v2"

# %%
import numpy as np
import pandas as pd
from IPython.display import HTML, display
from transformers import AutoTokenizer

from encoderec import data, plots, report
from encoderec.embeddings import resolve_backbone

plots.setup_notebook()
run = report.start("00_data", dict(profile=profile, datasets=datasets, tokenizer_backbone=tokenizer_backbone),
                   output_root)
loaded = {name: data.load_dataset(name, data_dir) for name in datasets}

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
popularity_summary = pd.DataFrame(
    {
        n: {
            "gini": data.gini(c),
            "top 10% items' share of interactions": float(np.sort(c)[::-1][: max(1, len(c) // 10)].sum() / sum(c)),
            "items with 5 interactions or fewer": float(np.mean(np.asarray(c) <= 5)),
        }
        for n, c in popularity.items()
    }
).T
display(popularity_summary.round(3))
run.figure(plots.rank_curve(popularity, "Item popularity (rank / frequency)", "item rank", "interactions"),
           "data_item_popularity")

# %% [markdown]
# ## Text per item
# The query of the contrastive task is the title; the document is description, features, brand and
# categories. Lengths are in word pieces of the backbone's tokenizer, so the share above its
# `max_seq_length` is the share of documents the encoder truncates.

# %%
tokenizer = AutoTokenizer.from_pretrained(str(resolve_backbone(tokenizer_backbone)))
max_tokens = min(tokenizer.model_max_length, 256)
view = data.TextView()
token_rows = []
for name, ds in loaded.items():
    for field_name, texts in (("title", view.queries(ds)), ("document", view.documents(ds))):
        counts = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
        token_rows += [(name, field_name, c) for c in counts]
tokens = pd.DataFrame(token_rows, columns=["dataset", "text", "tokens"])
text_summary = tokens.groupby(["dataset", "text"])["tokens"].agg(
    median="median", p90=lambda s: s.quantile(0.9), empty=lambda s: float((s == 0).mean()),
    truncated=lambda s: float((s > max_tokens).mean()),
)
display(text_summary.round(3))
run.figure(plots.distribution(tokens[tokens["text"] == "document"], "tokens", "dataset",
                              f"Document length in {tokenizer_backbone} word pieces (truncated at {max_tokens})",
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
