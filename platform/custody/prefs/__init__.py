"""Human preferences: pairs sampled from recorded weights, signed judgements, preference datasets."""
