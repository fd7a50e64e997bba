"""The console's pages under /console/. Every route but sign-in acts on the current workspace
(apps/console/tenancy.py); tests/test_tenancy_matrix.py walks them all."""

from django.urls import path

from .views import account, boxes, images, similarity, suggestions, tasks, tokens, training, webhooks

app_name = "console"

TASK = "tasks/<uuid:task_id>/"
VERSION = TASK + "versions/<int:version>/"
IMAGE = TASK + "images/<uuid:image_id>/"

urlpatterns = [
    path("", tasks.home, name="home"),
    path("login/", account.LoginView.as_view(), name="login"),
    path("logout/", account.LogoutView.as_view(), name="logout"),
    path("password/", account.PasswordChangeView.as_view(), name="password-change"),
    path("password/done/", account.PasswordChangeDoneView.as_view(), name="password-change-done"),
    path("workspace/switch/", account.switch, name="workspace-switch"),
    path("workspace/members/", account.members, name="members"),
    path("workspace/members/<int:user_id>/remove/", account.member_remove, name="member-remove"),
    path("workspace/tokens/", tokens.token_create, name="token-create"),
    path("workspace/tokens/<uuid:token_id>/revoke/", tokens.token_revoke, name="token-revoke"),
    path("workspace/audit-log/", account.audit_log, name="audit-log"),
    path("workspace/webhooks/", webhooks.webhooks, name="webhooks"),
    path("workspace/webhooks/deliveries/", webhooks.webhook_deliveries, name="webhook-deliveries"),
    path("workspace/webhooks/<uuid:webhook_id>/test/", webhooks.webhook_test, name="webhook-test"),
    path("workspace/webhooks/<uuid:webhook_id>/delete/", webhooks.webhook_delete, name="webhook-delete"),
    path("tasks/", tasks.task_list, name="task-list"),
    path(TASK, tasks.task_detail, name="task-detail"),
    path(TASK + "delete/", tasks.task_delete, name="task-delete"),
    path(TASK + "labels/", tasks.label_create, name="label-create"),
    path(TASK + "labels/counts/", tasks.label_counts, name="label-counts"),
    path(TASK + "deploy/", tasks.task_deploy, name="task-deploy"),
    path(TASK + "train/", tasks.task_train, name="task-train"),
    path(TASK + "final-refit/", tasks.task_final_refit, name="task-final-refit"),
    path(TASK + "try/", training.task_try, name="task-try"),
    path(TASK + "images/", images.image_grid, name="image-grid"),
    path(TASK + "images/upload/", images.image_upload, name="image-upload"),
    path(TASK + "images/bulk/", images.image_bulk, name="image-bulk"),
    path(TASK + "label-next/", suggestions.label_next, name="label-next"),
    path(TASK + "label-next/progress/", suggestions.label_next_progress, name="label-next-progress"),
    path(TASK + "label-next/accept/", suggestions.label_next_accept, name="label-next-accept"),
    path(TASK + "label-next/refresh/", suggestions.label_next_refresh, name="label-next-refresh"),
    path(TASK + "similar/progress/", similarity.similar_progress, name="similar-progress"),
    path(TASK + "similar/refresh/", similarity.similar_refresh, name="similar-refresh"),
    path(IMAGE + "similar/", similarity.similar_images, name="similar-images"),
    path(IMAGE + "boxes/", boxes.box_editor, name="box-editor"),
    path(IMAGE + "boxes/new/", boxes.box_create, name="box-create"),
    path(IMAGE + "boxes/guess/", boxes.box_guess, name="box-guess"),
    path(IMAGE + "boxes/<uuid:object_id>/", boxes.box_update, name="box-update"),
    path(IMAGE + "boxes/<uuid:object_id>/delete/", boxes.box_delete, name="box-delete"),
    path(VERSION, training.version_detail, name="version-detail"),
    path(VERSION + "progress/", training.version_progress, name="version-progress"),
    path(VERSION + "download/", training.version_download, name="version-download"),
]
