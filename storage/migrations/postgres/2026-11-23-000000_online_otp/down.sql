DROP TABLE online_otps;
