"""The ColonSim exception family. The CLI turns each into one line on stderr and exit code 2."""


class ColonSimError(Exception):
    """Base class: bad input that the user can fix. The message says what was wrong and what is right."""


class ConfigError(ColonSimError, ValueError):
    """A config key that does not exist, or a value of the wrong type or range.

    ``key`` is the dotted name of the field (``light.intensity``) once known.
    """

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"config key '{key}': {message}" if key else message)


class InputError(ColonSimError, ValueError):
    """A missing, empty, corrupt or foreign input file or folder."""


class MeshError(InputError):
    """A mesh that cannot be used: empty, corrupt, non-triangular, NaN vertices, too narrow."""


class DatasetError(InputError):
    """An HDF5 file that does not follow the ColonSim schema, or is cut short."""


class CheckpointError(InputError):
    """A checkpoint from another package, of another kind, or carrying a pickle payload."""


class RenderBackendError(ColonSimError, RuntimeError):
    """No usable headless OpenGL."""
