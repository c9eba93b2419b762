from nnlab.models.lm import LanguageModel  # noqa: E402,F401
