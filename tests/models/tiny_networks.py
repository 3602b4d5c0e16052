"""The smallest useful configuration of every registered network, for tests that train them."""

TINY_NETWORKS = {
    "srcnn": {"n1": 16, "n2": 8, "f2": 1},
    "vdsr": {"depth": 4, "n_feats": 16},
    "espcn": {"n1": 16, "n2": 8},
    "fsrcnn": {"d": 16, "s": 4, "m": 1},
    "edsr": {"n_blocks": 2, "n_feats": 16},
    "lapsrn": {"n_feats": 16, "depth": 2},
    "dbpn": {"stages": 2, "n_feats": 8, "n_init": 16},
    "rcan": {"n_groups": 1, "n_blocks": 2, "n_feats": 16, "reduction": 4},
    "swinir": {"depths": [2], "embed_dim": 16, "num_heads": [2], "window_size": 4, "out_feats": 16},
    "swinir_light": {"depths": [2], "embed_dim": 16, "num_heads": [2], "window_size": 4},
}
