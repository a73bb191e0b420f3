"""The neutral core every end layer shares, and which imports none of them: what a saved model is
(:mod:`.spec`), loading one (:mod:`.loader`, :mod:`.pretrained`), running it (:mod:`.predictor`,
:mod:`.backends`, :mod:`.onnx_runtime`, :mod:`.tta`, :mod:`.labels`), writing it for deployment
(:mod:`.model_export`, :mod:`.quantize`), the standard LIP metric (:mod:`.metrics`) and colouring
(:mod:`.viz`). It builds on ``models`` and ``data`` only."""
