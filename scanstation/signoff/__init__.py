"""The unit head's DSC sign-off (issue 15): the token, the signer's certificate, the sheet and the flow."""
