"""`docextract eval`: accuracy, confidence quality and speed on a user's own labelled documents.

dataset.py finds the documents and their truth files and runs the batch engine over them;
fields.py knows each field's kind and normalisation; score.py computes the metrics; core.py builds
the report; report.py renders it (table on stderr, JSON, self-contained HTML) and compares two.
"""
