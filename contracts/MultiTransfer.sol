// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @notice Moves several tokens in one transaction (pulled from the caller, who approved them):
/// every Transfer log comes from a token contract, none from this contract, which is tx.to.
contract MultiTransfer {
    using SafeERC20 for IERC20;

    function multiTransfer(address[] calldata tokens, address[] calldata to, uint256[] calldata amounts)
        external
    {
        require(tokens.length == to.length && to.length == amounts.length, "length mismatch");
        for (uint256 i = 0; i < tokens.length; i++) {
            IERC20(tokens[i]).safeTransferFrom(msg.sender, to[i], amounts[i]);
        }
    }
}
