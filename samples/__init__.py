"""Seeded generator of synthetic documents (PDF and phone-photo JPEG) with ground-truth JSON.

Aadhaar and PAN card fronts, multi-page Indian bank statements, Indian GST and UK VAT invoices;
every value is invented, every identifier checksum-valid, and the truth is built through the
`docextract.schemas` models and checked by their validators (`generate.make`). The committed set
in `data/` (with `data/manifest.json`) is reproduced by

    python -m docextract.samples.generate --out samples/data --seed 1 --count 2 --photos 1 --broken

Modules: `generate` (CLI and orchestration), `kyc`, `statement`, `invoice` (facts and drawing),
`truth` (facts -> schema JSON), `photo` (phone-photo simulation), `render` (PDF drawing and fonts),
`ids` (identifier makers), `money` (grouping, amounts in words), `pools` (names, places, goods).
"""
