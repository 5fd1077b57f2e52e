"""The live page: a web server streaming one model to many viewers, with prompts from any of them.

``broadcaster``: one producer, many viewers through small bounded drop-oldest queues. ``session``: the live stream
(one producer thread over a Streamer, paced to real time, its replayable record). ``app``: the aiohttp app
(``make_app``), ``start_site`` and ``ServerThread``. ``static/``: the page. Needs the ``serve`` extra (aiohttp).
"""
