"""The report: what a notebook calls to save its results and figures (`notebook`), the runner that executes the
notebooks of a profile (`runner`) and writes the index page (`index`), and the tables, statistics, verdicts and
figures built from the results (`tables`, `stats`, `summary`, `plots`, with the paper's numbers in `paper`)."""
