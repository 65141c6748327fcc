"""Folium/Leaflet pages served offline by the platform."""
