"""Analytics: what a labeling lead and a model owner look at. `frames` reads the store into
pandas tables; `health`, `progress` and `quality` turn them into panels (a figure's data
as JSON, its title and a caption with the number that matters); `draw` draws a panel with
matplotlib/seaborn; `report` puts them together, caches them and writes the HTML file."""
