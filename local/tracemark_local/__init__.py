"""The local stack (`tracemark serve`) and test harness: the backend of template.yaml on moto.

Development and demo only; never deployed. This is the one package that imports moto.
"""
