"""Generic placement strategies for the asset layers of the catalog (registered on import).

One module per family: :mod:`.points` (beside roads, at crossings, in villages),
:mod:`.buildings` (at addresses, unit entrances, building parts, structures),
:mod:`.housing` (housing units, rentals, households, building statistics),
:mod:`.areas` (polygons, town seats), :mod:`.fabric` (land use, parcels, map sheets) and
:mod:`.lines` (road pieces, corridors, street names, evacuation routes).
"""

from layers.synthetic.assets import areas, buildings, fabric, housing, lines, points

__all__ = ["areas", "buildings", "fabric", "housing", "lines", "points"]
