"""Seeded generator of synthetic documents (PDF and phone-photo JPEG) with ground-truth JSON."""
