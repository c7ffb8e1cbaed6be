"""The encrypted siamese head, in Concrete's three roles, and the HTTP server that runs it.

- `head`: the head as plain integers (client-side quantiser + the circuit's clear reference);
- `circuit`: the head as a concrete-python circuit (and its batched form); `concrete_ml_head`: as a Concrete-ML
  module (the shipped build);
- `build`: the build step: compile a head, write its artifacts, learn its input formats (`python -m fhe_head.build`);
- `client.FHEClient`: keys, encryption of one embedding at a time, decryption of the bit (key owner);
- `server.FHEServer`: runs the circuit on ciphertexts with evaluation keys (no secret key);
- `artifacts`: locating and checking a head point, framing of ciphertexts; `formats`: checking inputs;
- `service`: the verification server (FastAPI over FHEServer, SQLite templates): `python -m fhe_head.service`.

The user-side client (photo -> encrypt -> HTTP -> decrypt) and its CLI are in the `privface` package.
"""
