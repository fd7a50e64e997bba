"""A revoked token stops working at once: its cached lookup goes with it.

Signals, because tokens and users are deleted and changed on paths no service sees (the admin, a
user's cascade); the receivers only forget cached lookups (apps/workspaces/authentication.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from .authentication import token_cache_forget


@receiver(post_delete, sender=Token, dispatch_uid="workspaces-token-deleted")
def forget_deleted_token(sender, instance: Token, **kwargs) -> None:
    token_cache_forget(instance.key)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="workspaces-user-saved")
def forget_tokens_of_saved_user(sender, instance, created: bool, **kwargs) -> None:
    if created:
        return
    for key in Token.objects.filter(user_id=instance.pk).values_list("key", flat=True):
        token_cache_forget(key)
