"""A revoked token stops working at once: its cached lookup goes with it.

Signals, because tokens, users and workspaces are deleted and changed on paths no service sees
(the admin, a user's cascade); the receivers only forget cached lookups
(apps/workspaces/authentication.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from .authentication import token_cache_forget
from .models import Workspace


def _forget_tokens_of(user_id) -> None:
    keys = list(Token.objects.filter(user_id=user_id).values_list("key", flat=True))
    if keys:
        token_cache_forget(*keys)


@receiver(post_delete, sender=Token, dispatch_uid="workspaces-token-deleted")
def forget_deleted_token(sender, instance: Token, **kwargs) -> None:
    token_cache_forget(instance.key)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="workspaces-user-saved")
def forget_tokens_of_saved_user(sender, instance, created: bool, **kwargs) -> None:
    if not created:
        _forget_tokens_of(instance.pk)


@receiver(post_save, sender=Workspace, dispatch_uid="workspaces-default-saved")
@receiver(post_delete, sender=Workspace, dispatch_uid="workspaces-default-deleted")
def forget_tokens_of_default_owner(sender, instance: Workspace, **kwargs) -> None:
    if instance.is_default:  # only the default workspace is cached with the token
        _forget_tokens_of(instance.owner_id)
