DROP TABLE device_replies;
