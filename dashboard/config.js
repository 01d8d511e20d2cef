// Deploy-time configuration. Served as is by `tracemark serve` (same origin: leave apiBaseUrl
// empty). For S3/CloudFront, the deploy writes the API's URL here, e.g.
//   window.TRACEMARK_CONFIG = { apiBaseUrl: "https://abc123.execute-api.eu-west-1.amazonaws.com" };
window.TRACEMARK_CONFIG = window.TRACEMARK_CONFIG || { apiBaseUrl: "" };
