"""Preparation stages: each turns a dataset into a derived dataset, with a decision per record."""
