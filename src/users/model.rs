//! The `users` table and its queries.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use crate::schema::users;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub email_canonical: String,
    pub password_hash: String,
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub email: &'a str,
    pub email_canonical: &'a str,
    pub password_hash: &'a str,
}

impl NewUser<'_> {
    /// Inserts the user; a duplicate email (case-insensitively) is a
    /// unique-violation error for the caller to map.
    pub fn insert(&self, conn: &mut PgConnection) -> QueryResult<User> {
        diesel::insert_into(users::table)
            .values(self)
            .returning(User::as_returning())
            .get_result(conn)
    }
}

impl User {
    /// Finds a user by canonical email (see [`canonical_email`]).
    pub fn find_by_email(conn: &mut PgConnection, canonical: &str) -> QueryResult<Option<User>> {
        users::table
            .filter(users::email_canonical.eq(canonical))
            .select(User::as_select())
            .first(conn)
            .optional()
    }

    pub fn find(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<User>> {
        users::table
            .find(id)
            .select(User::as_select())
            .first(conn)
            .optional()
    }

    /// Adds a role unless the user has it already. Returns the user, or None
    /// when no user has that (canonical) email.
    pub fn grant_role(
        conn: &mut PgConnection,
        canonical: &str,
        role: &str,
    ) -> QueryResult<Option<User>> {
        conn.transaction(|conn| {
            let Some(user) = users::table
                .filter(users::email_canonical.eq(canonical))
                .select(User::as_select())
                .for_update()
                .first(conn)
                .optional()?
            else {
                return Ok(None);
            };
            if user.roles.iter().any(|r| r == role) {
                return Ok(Some(user));
            }
            let mut roles = user.roles.clone();
            roles.push(role.to_owned());
            diesel::update(users::table.find(user.id))
                .set((
                    users::roles.eq(roles),
                    users::updated_at.eq(diesel::dsl::now),
                ))
                .returning(User::as_returning())
                .get_result(conn)
                .map(Some)
        })
    }
}
