"""f-CLSWGAN (Xian et al., CVPR 2018): conditional WGAN-GP on concat(z, a) plus the frozen
classifier loss. Its networks and losses are `base.WGANGP`, the base of the other WGANs here."""

from __future__ import annotations

from .base import SMALL_DATA_RATES, SMALL_DATA_SIZES, WGAN_SPACE, WGANGP, Variant, WGANParams, merge_defaults, register

register(
    Variant(
        name="fclswgan",
        description="f-CLSWGAN: WGAN-GP on concat(z, a) + frozen-classifier loss (Xian et al. 2018)",
        params_cls=WGANParams,
        build=WGANGP,
        # Per-dataset GZSL settings of the reference code (lr / cls_weight / syn_num / epochs).
        dataset_defaults=merge_defaults(SMALL_DATA_RATES, SMALL_DATA_SIZES, {
            "AWA1": dict(lr_g=1e-5, lr_d=1e-5, syn_num=1800, epochs=30),
            "AWA2": dict(lr_g=1e-5, lr_d=1e-5, syn_num=1800, epochs=30),
            "CUB": dict(lr_g=1e-4, lr_d=1e-4, syn_num=300, epochs=56),
            "SUN": dict(lr_g=2e-4, lr_d=2e-4, syn_num=400, epochs=40),
            "FLO": dict(lr_g=1e-4, lr_d=1e-4, cls_weight=0.1, syn_num=1200, epochs=80),
        }),
        space=WGAN_SPACE,
    )
)
