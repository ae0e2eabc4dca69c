// @generated automatically by Diesel CLI.

diesel::table! {
    oauth_clients (client_id) {
        client_id -> Text,
        name -> Text,
        secret_hash -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (id, expires_at) {
        id -> Uuid,
        session_id -> Uuid,
        token_hash -> Bytea,
        issued_at -> Timestamptz,
        expires_at -> Timestamptz,
        spent_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        last_used_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        public_jwk -> Jsonb,
        private_key -> Bytea,
        nonce -> Bytea,
        created_at -> Timestamptz,
        signs_from -> Timestamptz,
        signs_until -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        email_canonical -> Text,
        password_hash -> Text,
        roles -> Array<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    oauth_clients,
    refresh_tokens,
    sessions,
    signing_keys,
    users,
);
