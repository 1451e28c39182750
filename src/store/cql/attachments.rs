//! Attachment records: one row each, claimed by one message with a
//! conditional update (the only way two sends racing for one id can be told
//! apart), deleted with that message.

use super::CqlStore;
use super::rows::{AttachmentRow, attachment_from_row, bigint, decode_first, ts, unset_if_none};
use super::store_impl::applied;
use crate::ids::{AppId, AttachmentId, ChatNumber, MessageNumber, UserId};
use crate::model::Attachment;
use crate::store::StoreError;

impl CqlStore {
    pub(super) async fn insert_attachment_row(&self, a: &Attachment) -> Result<(), StoreError> {
        let values = (
            a.app.as_str(),
            a.id.as_str(),
            bigint(a.chat.get())?,
            a.name.as_str(),
            a.content_type.as_str(),
            bigint(a.size)?,
            unset_if_none(a.created_by.as_ref().map(UserId::as_str)),
            ts(a.created_at),
        );
        self.session()
            .execute_unpaged(&self.stmts().insert_attachment, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    pub(super) async fn attachment_row(
        &self,
        app: &AppId,
        id: &AttachmentId,
    ) -> Result<Option<Attachment>, StoreError> {
        let result = self
            .session()
            .execute_unpaged(&self.stmts().attachment, (app.as_str(), id.as_str()))
            .await
            .map_err(StoreError::unavailable)?;
        decode_first::<AttachmentRow>(result, "attachments")?
            .map(|row| attachment_from_row(app, id, row))
            .transpose()
    }

    pub(super) async fn attach_row(
        &self,
        app: &AppId,
        id: &AttachmentId,
        chat: ChatNumber,
        number: MessageNumber,
    ) -> Result<bool, StoreError> {
        let values = (bigint(number.get())?, app.as_str(), id.as_str(), bigint(chat.get())?);
        let result = self
            .session()
            .execute_unpaged(&self.stmts().attach, values)
            .await
            .map_err(StoreError::unavailable)?;
        applied(result, "attachments attach")
    }

    pub(super) async fn detach_row(
        &self,
        app: &AppId,
        id: &AttachmentId,
        number: MessageNumber,
    ) -> Result<(), StoreError> {
        let values = (app.as_str(), id.as_str(), bigint(number.get())?);
        self.session()
            .execute_unpaged(&self.stmts().detach, values)
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }

    pub(super) async fn delete_attachment_row(
        &self,
        app: &AppId,
        id: &AttachmentId,
    ) -> Result<(), StoreError> {
        self.session()
            .execute_unpaged(&self.stmts().delete_attachment, (app.as_str(), id.as_str()))
            .await
            .map_err(StoreError::unavailable)?;
        Ok(())
    }
}
