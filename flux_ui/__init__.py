"""flux-ui: a browser playground for the FLUX image models on Microsoft Foundry."""
