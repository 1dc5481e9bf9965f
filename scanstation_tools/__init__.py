"""Developer and training tools, never installed on a production station: synthetic ACR pages, the demo station,
the stand-alone ``scanstation ocr`` command.
"""
