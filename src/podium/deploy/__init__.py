"""Models that leave podium: ``build``/``graph``/``parity``/``writer`` (``podium export``: an ONNX graph checked
against podium) and ``pack`` (``podium pack``: a folder for an offline Kaggle notebook). The torch-free runtime an
exported graph runs on (``OnnxModel``, the resize) is prediction with a saved model: ``podium.inference.onnx``."""
