"""The pipeline: the notebooks' parameters (`parameters`), profiles (`profiles`), the models a report knows
(`registry`), the units of work and recommender runs (`runs`), obtained under one compute policy (`policy`) from the
run archive (`archive`) or the caches, the provenance every result records (`provenance`), and exports (`export`)."""
