"""gifd_lite: a notebook course on gradient inversion attacks in federated learning, up to GIFD.

The notebooks in ``notebooks/`` introduce each idea; this package holds the code they call.
"""

__version__ = "0.1.0"
