// The roles the twin app adds for its clients, found again by their paths.

/** Construct id of the client role in the twin app (its CDK path ends in `/<id>/Resource`): `grantSubmit`. */
export const TWIN_CLIENT_ROLE_ID = 'TwinClientRole';

/** Construct id of the HTTP API client role: only what `HtcGrid.api.grantInvoke` grants (a Python user's role). */
export const TWIN_API_CLIENT_ROLE_ID = 'TwinApiClientRole';
