DROP TABLE promotions;
--bun:split
DROP TABLE pipeline_stages;
--bun:split
DROP TABLE pipelines;
