"""Serving: a WebSocket policy server speaking openpi's wire protocol, its client-side helpers.

- :mod:`.msgpack_numpy`: the codec (msgpack + numpy arrays, never pickle);
- :mod:`.protocol`: request kinds and error replies on top of openpi's protocol;
- :mod:`.server`: :class:`~.server.PolicyServer` (``embodia serve``), :mod:`.thread` to run it in
  the background;
- :mod:`.client`: :class:`~.client.PolicyClient`; :mod:`.chunk_broker`: execute one chunk while
  the next is computed;
- :mod:`.demo`: a random-weights policy for trying the whole loop without a checkpoint.

Importing this package imports nothing heavy; the model is loaded by whoever builds a Policy.
"""
