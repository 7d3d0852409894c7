"""Every capability of comfygen as plain Python, no ``mcp``: ``app/`` (the operation registry and the service
every surface calls), ``agent/`` (the ComfyGen-IC loop), ``comfy/`` (ComfyUI client and endpoint pool),
``graph/`` (graph rewrites), ``planner/`` and ``categorize/`` (choosing flows), ``scoring/`` (reward models),
``search/`` (noise search), ``dataset/`` (scored datasets, the score table), ``pipeline.py`` (a flow run on
ComfyUI, recorded), ``store.py`` and ``run_scores.py`` (the run store), ``settings.py``, ``errors.py``."""
