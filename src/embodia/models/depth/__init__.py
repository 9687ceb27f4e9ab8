"""GEM's generative depth supervision (and GEM-VLA's DiT action expert).

The VLM generates each input image's depth map from its own final-layer visual tokens, trained
jointly with the language loss, so spatial knowledge has to enter the backbone. One file per job:

- ``encodings``: depth <-> the image the generator produces (Spectral-coloured or single-channel
  normalised inverse depth), and back to metres for scoring;
- ``metrics``: AbsRel and delta < 1.25 on valid pixels;
- ``tokens``: each image's vision-token states out of the sequence, RGB back out of pixel patches;
- ``connector``: final-layer states -> the DiT's condition (Linear, GELU, Linear, RMSNorm);
- ``autoencoder`` / ``codec``: the frozen latent space (embodia's small autoencoder or DC-AE);
- ``dit`` / ``flow``: the SANA DiT and rectified-flow training / guided Euler sampling;
- ``regression``: the plain dense-regression ablation;
- ``head``: ``DepthHead``, registered as ``model.aux_heads["depth"]``;
- ``action_dit``: GEM-VLA's action expert (``model.aux_heads["action"]`` when configured);
- ``train_autoencoder``: the `embodia depth train-autoencoder` command.
"""
