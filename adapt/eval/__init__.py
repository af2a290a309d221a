"""How well adaptation works, and the training-free tools it is measured against.

- :mod:`adapt.eval.classifier`: the small real-versus-synthetic classifier and how it is trained
  and tested (also the shape of the fresh critics of :mod:`adapt.critics`);
- :mod:`adapt.eval.score`: ``adapt score``, the classifier two-sample test of raw and refined frames
  against a synthetic set, with its structure floor and cue views;
- :mod:`adapt.eval.match`: ``adapt match``, the training-free reference that gives real frames a
  synthetic set's highlights (none), defocus, tones and colour;
- :mod:`adapt.eval.pick`: ``adapt pick``, renders kept from a pool by the real frames' layouts;
- :mod:`adapt.eval.protocol`: the benchmark's protocol (held-out split, what a refiner changes on
  the held-out frames, the choice among a run's snapshots, the controlled score), which
  ``benchmarks/adapt_quality.py`` drives.
"""
