// The role the twin app adds for its client (what `HtcGrid.grantSubmit` grants a user), found again by its path.

/** Construct id of the client role in the twin app (its CDK path ends in `/<id>/Resource`). */
export const TWIN_CLIENT_ROLE_ID = 'TwinClientRole';
