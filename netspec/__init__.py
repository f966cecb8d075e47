"""netspec: trained deep networks as hand-editable spiking-network specs, simulated with Brian2.

The pipeline: ``netspec.spec`` loads and validates a spec, ``netspec.export`` writes one
from a Keras model, ``netspec.reference`` computes the ANN in numpy, ``netspec.brian`` generates Brian2
code and ``netspec.run`` evaluates a spec on a dataset.
"""

__version__ = "0.1.0"
