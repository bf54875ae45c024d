// Package merchant is the Google Merchant API partner of
// feedmill-connector-merchant. An upsert is accounts.productInputs.insert
// (POST {base}/products/v1/accounts/{account}/productInputs:insert?dataSource=...)
// with offerId, contentLanguage, feedLabel and productAttributes (price as
// amountMicros + currencyCode); a delete is accounts.productInputs.delete
// (DELETE .../productInputs/{contentLanguage}~{feedLabel}~{offerId}?dataSource=...),
// where 404 counts as done. Requests carry an OAuth2 access token obtained
// with the service-account key in merchant.credentials_file (the two-legged
// JWT flow of golang.org/x/oauth2/jwt; the key's token_uri may point at a
// fake in tests). One item is one request; the runtime sends
// `concurrency` of them at once under the rate limit.
//
// The package maps items to requests and answers to results; it owns no
// retries or state.
package merchant
